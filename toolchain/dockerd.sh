#!/usr/bin/env bash
# Makes sure a local Docker engine answers `docker info` (the Makefile's `dockerd` target).
# Already answering: done in about a second. Otherwise installs Debian's docker.io when dockerd is
# missing, starts dockerd as root in the background (storage driver overlay2, vfs when overlay2
# fails) and waits until it answers. No registry mirror; no network use besides apt; no bridge,
# iptables rule or forwarding change on the host.
#
#   LIFTLOCK_DOCKERD_TIMEOUT  seconds to wait for the engine to answer (default 60)
#   LIFTLOCK_DOCKERD_LOG      dockerd's log file (default /var/log/liftlock-dockerd.log)
#   LIFTLOCK_DOCKERD_PIDFILE  dockerd's pid file (default /var/run/docker.pid, dockerd's own)
set -euo pipefail

timeout=${LIFTLOCK_DOCKERD_TIMEOUT:-60}
log=${LIFTLOCK_DOCKERD_LOG:-/var/log/liftlock-dockerd.log}
pidfile=${LIFTLOCK_DOCKERD_PIDFILE:-/var/run/docker.pid}
lockfile=${TMPDIR:-/tmp}/liftlock-dockerd.lock

step() { printf '[dockerd] %s\n' "$*"; }
die() { printf 'dockerd.sh: %s\n' "$*" >&2; exit 1; }

engine_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

report_running() {
  step "Docker engine running: $(docker info --format 'server {{.ServerVersion}}, storage driver {{.Driver}}' 2>/dev/null)"
}

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "'$1' needs root: run 'sudo bash toolchain/dockerd.sh' once, or start Docker yourself"
  fi
}

install_engine() {
  command -v apt-get >/dev/null \
    || die "dockerd not found and apt-get is not available: install Docker Engine, then re-run"
  step "dockerd not found: installing Debian's docker.io with apt-get ..."
  # Waits for another apt run (the machine is shared) instead of failing on its lock.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io >/dev/null
  command -v dockerd >/dev/null || die "apt-get installed docker.io but dockerd is still not on PATH"
}

# Alive and not a zombie: an exited dockerd lingers in /proc until init reaps it.
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n "$state" && "$state" != Z ]]
}

# The pid of a dockerd already started on this machine (from its pid file), if it is alive.
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ -n "$pid" ]] && alive "$pid" && echo "$pid"
}

# Starts dockerd detached from this shell (its own session survives make); prints its pid.
# The host's network stays as it was: a default dockerd turns on IP forwarding and adds a NAT
# bridge with iptables rules. liftlock needs neither: the dev container uses host networking
# (bound to 127.0.0.1) and image builds run with network "none".
start_engine() {
  local driver=$1
  as_root bash -c 'setsid dockerd --storage-driver="$1" --pidfile="$2" \
                     --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
                     >>"$3" 2>&1 </dev/null &
                   echo $!' _ "$driver" "$pidfile" "$log"
}

# 0: answers; 1: the process exited; 2: timed out.
wait_for_engine() {
  local pid=$1 deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    engine_answers && return 0
    alive "$pid" || { engine_answers && return 0; return 1; }
    sleep 0.5
  done
  return 2
}

log_tail() { tail -n "${1:-5}" "$log" 2>/dev/null | sed 's/^/    /'; }

if engine_answers; then
  report_running
  exit 0
fi

# One starter at a time: concurrent `make` runs wait here, then find the engine answering.
exec {lock}>"$lockfile"
flock -w "$((timeout * 2))" "$lock" || die "another dockerd.sh holds $lockfile for too long"
if engine_answers; then
  report_running
  exit 0
fi

command -v dockerd >/dev/null || install_engine
command -v docker >/dev/null || die "dockerd is installed but the docker client is not on PATH"
as_root mkdir -p "$(dirname "$log")"

if pid=$(running_pid); then
  step "dockerd (pid $pid) is already starting; waiting up to ${timeout}s ..."
  status=0
  wait_for_engine "$pid" || status=$?
  ((status == 0)) && { report_running; exit 0; }
  die "dockerd (pid $pid, pid file $pidfile) does not answer 'docker info'; stop it or read its log"
fi

for driver in overlay2 vfs; do
  step "starting dockerd (storage driver $driver), log $log ..."
  pid=$(start_engine "$driver")
  status=0
  wait_for_engine "$pid" || status=$?
  case $status in
    0) report_running; exit 0 ;;
    1) step "dockerd exited with storage driver $driver; last lines of $log:"; log_tail ;;
    *) die "dockerd (pid $pid) did not answer 'docker info' within ${timeout}s; see $log" ;;
  esac
done
die "dockerd failed to start with overlay2 and with vfs; see $log"
