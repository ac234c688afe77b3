#!/usr/bin/env bash
# Builds liftlock's pinned Go tools from the Go module proxy into a cache outside the work tree,
# then links them into .tools/bin. Usage: toolchain/build.sh [COMPONENT...]  (default: all)
#
# Each component is a wrapper module toolchain/<name>/ (go.mod + go.sum pin every module) with a
# build.env naming BINARY, PACKAGE, VERSION, TAGS, LDFLAGS and optionally a prepare() function
# (run in the module folder before `go build`) and an install() function (run after linking).
# The cache key hashes the module files and the Go version, so a fresh clone on the same machine
# reuses a build in seconds and any pin change rebuilds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cache=${LIFTLOCK_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liftlock/toolchain}
bin="$root/.tools/bin"
venv_bin=${LIFTLOCK_VENV_BIN:-$root/.venv/bin}
mkdir -p "$cache" "$bin"

step() { printf '[toolchain] %s\n' "$*"; }
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# Hard link (same file system) or copy: the engine looks for its bundled plugins beside the
# *real* pulumi executable, so .tools/bin must hold the file itself, not a symlink into the cache.
place() { ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"; }

cache_key() {
  local dir=$1
  { go env GOVERSION; cd "$dir" && cat go.mod go.sum build.env $(ls *.go 2>/dev/null); } \
    | sha256sum | cut -c1-12
}

build_component() {
  local name=$1 dir="$here/$1"
  [[ -f "$dir/build.env" ]] || { echo "toolchain: no component '$name' (no $dir/build.env)" >&2; exit 2; }
  local BINARY PACKAGE VERSION TAGS="" LDFLAGS=""
  unset -f prepare install 2>/dev/null || true
  # shellcheck disable=SC1091
  source "$dir/build.env"
  local key out start
  key=$(cache_key "$dir")
  out="$cache/$name-$VERSION-$key"
  if [[ -x "$out/$BINARY" ]]; then
    step "$name $VERSION: cached ($out)"
  else
    command -v go >/dev/null || { echo "toolchain: 'go' not found; install Go >= 1.24" >&2; exit 3; }
    start=$(date +%s)
    step "$name $VERSION: downloading modules (go mod download) ..."
    (cd "$dir" && go mod download)
    if declare -F prepare >/dev/null; then
      step "$name $VERSION: preparing sources ..."
      (cd "$dir" && prepare)
    fi
    step "$name $VERSION: compiling $PACKAGE (cold builds take minutes; see README) ..."
    mkdir -p "$out.tmp"
    (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -tags "$TAGS" \
        -ldflags "$LDFLAGS" -o "$out.tmp/$BINARY" "$PACKAGE")
    rm -rf "$out" && mv "$out.tmp" "$out"
    step "$name $VERSION: built in $(elapsed "$start") -> $out/$BINARY"
  fi
  place "$out/$BINARY" "$bin/$BINARY"
  if declare -F install >/dev/null; then install; fi
}

link_python_plugins() {
  # The language host and the dynamic-provider launcher come from the liftlock package.
  local plugin
  for plugin in pulumi-language-python pulumi-resource-pulumi-python pulumi-analyzer-policy-python; do
    if [[ -x "$venv_bin/$plugin" ]]; then
      ln -sfn "$venv_bin/$plugin" "$bin/$plugin"
    fi
  done
}

components=("$@")
if [[ ${#components[@]} -eq 0 ]]; then
  components=()
  for d in "$here"/*/; do [[ -f "$d/build.env" ]] && components+=("$(basename "$d")"); done
fi

if [[ -n "${LIFTLOCK_SYSTEM_PULUMI:-}" ]]; then
  # A user with an official CLI may skip the Go build of the engine itself.
  step "pulumi: using $LIFTLOCK_SYSTEM_PULUMI instead of building it"
  cp -f "$LIFTLOCK_SYSTEM_PULUMI" "$bin/pulumi"
  components=("${components[@]/pulumi}")
fi

total=$(date +%s)
for c in "${components[@]}"; do [[ -n "$c" ]] && build_component "$c"; done
link_python_plugins
step "done in $(elapsed "$total"); tools in $bin"
