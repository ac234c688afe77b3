#!/usr/bin/env bash
# Create or update THE liftlock preview comment on a pull request: the one whose body starts with
# the hidden marker `<!-- liftlock-preview -->` (written by `liftlock preview`), so every push
# edits the same comment in place instead of adding a new one.
# Usage: upsert-preview-comment.sh <pr-number> <markdown-file>   (needs GH_TOKEN, GITHUB_REPOSITORY)
set -euo pipefail

pr=${1:?pull request number}
body=${2:?markdown file}
marker='<!-- liftlock-preview -->'
[[ "$pr" =~ ^[0-9]+$ ]] || { echo "not a pull request number: '$pr'" >&2; exit 2; }
[[ -s "$body" ]] || { echo "empty or missing comment body: $body" >&2; exit 2; }
head -c ${#marker} "$body" | grep -qF "$marker" || {
  echo "$body does not start with the marker $marker (was it written by liftlock preview?)" >&2
  exit 2
}

repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}
existing=$(gh api --paginate "repos/$repo/issues/$pr/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
if [[ -n "$existing" ]]; then
  gh api --method PATCH "repos/$repo/issues/comments/$existing" -F "body=@$body" --silent
  echo "updated comment $existing on #$pr"
else
  gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@$body" --silent
  echo "created the preview comment on #$pr"
fi
