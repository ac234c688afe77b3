#!/usr/bin/env bash
# Builds liftlock's pinned Go tools from the Go module proxy into a cache outside the work tree,
# then links them into .tools/bin. Usage: toolchain/build.sh [COMPONENT...]  (default: all)
#
# Each component is a wrapper module toolchain/<name>/ (go.mod + go.sum pin every module) with a
# build.env naming BINARY, PACKAGE (or several of each, space-separated, in the same order),
# VERSION, TAGS, LDFLAGS, optionally LINK=false (keep the binaries out of .tools/bin), a prepare()
# function (run in the module folder before `go build`) and an
# install() function (run in the module folder after linking; it may use TOOLS_BIN, BUILT_BINARY,
# VERSION and step).
# The cache key hashes the module's files and the Go version, so a fresh clone on the same
# machine reuses a build in seconds and any pin change rebuilds.
# LIFTLOCK_TOOLCHAIN_CACHED_ONLY=1 fails instead of building what is not cached (tests, CI checks).
set -euo pipefail

# Build order. A component's install() may use tools built before it (kubernetes installs its
# plugin with pulumi), so named components are also built in this order.
ORDER=(pulumi kubernetes kube-apiserver etcd flux actionlint kube-score gitleaks)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cache=${LIFTLOCK_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liftlock/toolchain}
bin="$root/.tools/bin"
venv_bin=${LIFTLOCK_VENV_BIN:-$root/.venv/bin}
mkdir -p "$cache" "$bin"

step() { printf '[toolchain] %s\n' "$*"; }
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
die() { echo "toolchain: $*" >&2; exit "${2:-1}"; }

# Hard link (same file system) or copy: the engine looks for its bundled plugins beside the
# *real* pulumi executable, so .tools/bin must hold the file itself, not a symlink into the cache.
place() {
  [[ "$1" -ef "$2" ]] && return 0
  ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"
}

# Every binary the component names (BINARY may list several) is in the cache folder $1.
all_built() {
  local b
  for b in $BINARY; do [[ -x "$1/$b" ]] || return 1; done
}

cache_key() {
  # Everything that decides the binary: pins, build settings, the wrapper's own Go sources.
  local dir=$1
  {
    go env GOVERSION GOOS GOARCH
    cd "$dir"
    find . -name '*.go' -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done
    cat go.mod go.sum build.env
  } | sha256sum | cut -c1-12
}

compile() {
  local name=$1 dir=$2 out=$3 start phase
  start=$(date +%s)
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  phase=$(date +%s)
  step "$name $VERSION: downloading modules (go mod download) ..."
  (cd "$dir" && go mod download)
  step "$name $VERSION: modules ready in $(elapsed "$phase")"
  if declare -F prepare >/dev/null; then
    phase=$(date +%s)
    step "$name $VERSION: preparing sources ..."
    (cd "$dir" && prepare)
    step "$name $VERSION: sources prepared in $(elapsed "$phase")"
  fi
  phase=$(date +%s)
  step "$name $VERSION: compiling $PACKAGE (cold builds take minutes; see README) ..."
  # Several packages build in one go command (shared work) into the folder, named after them.
  local target="$out.tmp/$BINARY"
  [[ "$BINARY" == *" "* ]] && target="$out.tmp/"
  # shellcheck disable=SC2086  # PACKAGE may name several packages
  (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -tags "$TAGS" \
      -ldflags "$LDFLAGS" -o "$target" $PACKAGE)
  local b
  for b in $BINARY; do
    [[ -x "$out.tmp/$b" ]] || die "$name: go build made no '$b' (BINARY and PACKAGE disagree in build.env)"
  done
  step "$name $VERSION: compiled in $(elapsed "$phase")"
  rm -rf "$out" && mv "$out.tmp" "$out"
  step "$name $VERSION: built in $(elapsed "$start") -> $out/"
}

build_component() {
  local name=$1 dir="$here/$1"
  [[ -f "$dir/build.env" ]] || die "no component '$name' (no $dir/build.env)" 2
  local BINARY PACKAGE VERSION TAGS="" LDFLAGS="" LINK=true
  unset -f prepare install 2>/dev/null || true
  # shellcheck disable=SC1091
  source "$dir/build.env"
  command -v go >/dev/null || die "'go' not found; install Go >= 1.24" 3
  local key out lock
  key=$(cache_key "$dir")
  out="$cache/$name-$VERSION-$key"
  if ! all_built "$out"; then
    # One builder per component at a time: two checkouts building at once wait, then share.
    exec {lock}>"$cache/$name.lock"
    flock "$lock"
    if all_built "$out"; then
      step "$name $VERSION: cached (built meanwhile by another run: $out)"
    elif [[ -n "${LIFTLOCK_TOOLCHAIN_CACHED_ONLY:-}" ]]; then
      die "$name $VERSION: not in the cache ($out) and LIFTLOCK_TOOLCHAIN_CACHED_ONLY is set" 4
    else
      compile "$name" "$dir" "$out"
    fi
    exec {lock}>&-
  else
    step "$name $VERSION: cached ($out)"
  fi
  local b first=${BINARY%% *}
  if [[ "$LINK" == true ]]; then
    for b in $BINARY; do place "$out/$b" "$bin/$b"; done
  fi
  if declare -F install >/dev/null; then
    (cd "$dir" && TOOLS_BIN=$bin BUILT_BINARY=$out/$first install)
  fi
}

link_python_plugins() {
  # The language host and the dynamic-provider launcher come from the liftlock package.
  local plugin
  for plugin in pulumi-language-python pulumi-resource-pulumi-python; do
    if [[ -x "$venv_bin/$plugin" ]]; then
      ln -sfn "$venv_bin/$plugin" "$bin/$plugin"
    fi
  done
}

# Every component folder must have its place in ORDER, so none is silently skipped.
for d in "$here"/*/; do
  c=$(basename "$d")
  if [[ -f "$d/build.env" && " ${ORDER[*]} " != *" $c "* ]]; then
    die "component '$c' is missing from ORDER in $0" 2
  fi
done

requested=("$@")
for c in "${requested[@]}"; do
  if [[ " ${ORDER[*]} " != *" $c "* || ! -f "$here/$c/build.env" ]]; then
    die "no component '$c' (known: ${ORDER[*]})" 2
  fi
done
components=()
for c in "${ORDER[@]}"; do
  if [[ ${#requested[@]} -eq 0 && -f "$here/$c/build.env" ]] || [[ " ${requested[*]} " == *" $c "* ]]; then
    components+=("$c")
  fi
done

if [[ -n "${LIFTLOCK_SYSTEM_PULUMI:-}" ]]; then
  # A user with an official CLI may skip the Go build of the engine itself.
  step "pulumi: using $LIFTLOCK_SYSTEM_PULUMI instead of building it"
  [[ "$LIFTLOCK_SYSTEM_PULUMI" -ef "$bin/pulumi" ]] || cp -f "$LIFTLOCK_SYSTEM_PULUMI" "$bin/pulumi"
  kept=()
  for c in "${components[@]}"; do [[ "$c" == pulumi ]] || kept+=("$c"); done
  components=("${kept[@]}")
fi

# Before any cold build: which tools will be compiled and about how long that takes.
plan_builds() {
  local c planned=() minutes=0
  for c in "$@"; do
    (
      BINARY="" VERSION=""
      # shellcheck disable=SC1091
      source "$here/$c/build.env"
      all_built "$cache/$c-$VERSION-$(cache_key "$here/$c")" ||
        echo "$c $(awk -v c="$c" '$1 == c {print $2}' "$here/cold-build-minutes")"
    )
  done | {
    while read -r c m; do
      planned+=("$c (~$m min)")
      [[ "$m" =~ ^[0-9]+$ ]] && minutes=$((minutes + m))
    done
    if [[ ${#planned[@]} -gt 0 ]]; then
      step "cold builds ahead: ${planned[*]}; about $minutes min in all on 2 cores (Go, from the module proxy; cached afterwards, outside the work tree)"
    fi
  }
}
command -v go >/dev/null && plan_builds "${components[@]}"

total=$(date +%s)
for c in "${components[@]}"; do build_component "$c"; done
link_python_plugins
step "done in $(elapsed "$total"); tools in $bin"
