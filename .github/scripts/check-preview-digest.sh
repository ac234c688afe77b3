#!/usr/bin/env bash
# Refuse to apply a render stack's manifests unless they are what its pull request previewed.
#
# `liftlock preview` records, in a hidden line of THE preview comment, the digest and the per-file
# sha256 of what each render stack rendered at the pull request's head. After `pulumi up` wrote
# deploy/<stack>/ at the merge commit (and before that render is committed, which is what Argo CD
# or Flux applies), this script finds the pull request merged as $GITHUB_SHA, reads that record
# and compares it file by file with the tree on disk: any file changed, added or missing is named
# and the deploy stops. A stack whose stack file is not `target: render` is not checked here.
# Usage: check-preview-digest.sh <stack>   (needs GH_TOKEN, GITHUB_REPOSITORY, GITHUB_SHA, jq)
set -euo pipefail

stack=${1:?stack}
[[ "$stack" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "not a stack name: '$stack'" >&2; exit 2; }
repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}
sha=${GITHUB_SHA:?GITHUB_SHA is not set}
stack_file="stacks/Pulumi.$stack.yaml"
[[ -f "$stack_file" ]] || { echo "$stack_file: no such stack file" >&2; exit 2; }
if ! grep -Eq '^[[:space:]]*liftlock:target:[[:space:]]*"?render"?[[:space:]]*$' "$stack_file"; then
  echo "$stack is not a render stack: the engine applies its own plan (no rendered digest)"
  exit 0
fi

refuse() {
  echo "::error::refusing to apply $stack: $1" >&2
  exit 1
}

pr=$(gh api "repos/$repo/commits/$sha/pulls" \
  --jq '[.[] | select(.merged_at != null)][0].number // empty') || pr=
[[ "$pr" =~ ^[0-9]+$ ]] || refuse "no merged pull request has $sha as its merge: nothing previewed this render"
pr_head=$(gh api "repos/$repo/pulls/$pr" --jq .head.sha)
marker='<!-- liftlock-preview -->'
record=$(gh api --paginate "repos/$repo/issues/$pr/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .body" \
  | grep -o '<!-- liftlock-rendered {.*} -->' | head -n 1 \
  | sed -e 's/^<!-- liftlock-rendered //' -e 's/ -->$//') || true
[[ -n "$record" ]] || refuse "pull request #$pr has no preview comment with a rendered record"

previewed_head=$(jq -r '.head' <<<"$record")
[[ "$previewed_head" == "$pr_head" ]] \
  || refuse "the preview of #$pr ran on $previewed_head, the pull request was merged at $pr_head"
jq -e --arg s "$stack" '.stacks[$s]' <<<"$record" >/dev/null \
  || refuse "the preview of #$pr rendered no $stack (it did not affect the stack then)"

expected=$(jq -r --arg s "$stack" '.stacks[$s].files | to_entries[] | "\(.value)  \(.key)"' <<<"$record" | LC_ALL=C sort -k2)
mapfile -t folders < <(jq -r --arg s "$stack" '.stacks[$s].folders[]' <<<"$record")
actual=$(for folder in "${folders[@]}"; do [[ -d "$folder" ]] && find "$folder" -type f; done \
  | LC_ALL=C sort | while read -r file; do sha256sum "$file"; done)

problems=$(LC_ALL=C join -j 2 -a 1 -a 2 -e MISSING -o 0,1.1,2.1 \
  <(LC_ALL=C sort -k2 <<<"$expected") <(LC_ALL=C sort -k2 <<<"$actual") \
  | awk '$2 != $3 {
      if ($2 == "MISSING") print $1 ": rendered at merge, not in the preview";
      else if ($3 == "MISSING") print $1 ": previewed, not rendered at merge";
      else print $1 ": rendered at merge differs from the preview (sha256 " substr($2, 1, 12) " previewed, " substr($3, 1, 12) " now)";
    }')
if [[ -n "$problems" ]]; then
  echo "$problems" >&2
  refuse "what merging rendered is not what pull request #$pr previewed (above); re-run its preview at the merged head, or fix the nondeterminism"
fi
digest=$(jq -r --arg s "$stack" '.stacks[$s].digest' <<<"$record")
echo "$stack: the render matches what pull request #$pr previewed ($digest)"
