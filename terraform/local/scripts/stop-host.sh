#!/bin/sh
# Stop everything the deployment started on the local "machine": the feature
# servers of every release, their supervisors, their keeper and the materialization
# schedule (by their pid files under REMOTE_BASE_DIR, each a process group),
# then any other process whose working directory or command line is inside
# REMOTE_BASE_DIR (an orphan whose supervisor was killed). Fails when one
# survives SIGKILL, so `terraform destroy` (and `featctl destroy`) say so.
# Safe to run twice.
set -u

: "${STATE_DIR:?}" "${REMOTE_BASE_DIR:?}"

stop_group() {
  pid="$1"
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null || return 0
  # Supervisors and servers lead their own process groups: signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while { kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; } && [ "$i" -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  return 0
}

# The keeper first, and the records it starts supervisors from (agent/keeper.py).
stop_group "$(cat "$REMOTE_BASE_DIR/run/keeper.pid" 2>/dev/null)"
rm -f "$REMOTE_BASE_DIR"/releases/*/.featctl/*.argv "$REMOTE_BASE_DIR"/run/*.argv
for f in "$REMOTE_BASE_DIR"/releases/*/.featctl/*.pid "$REMOTE_BASE_DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  stop_group "$(cat "$f")"
  rm -f "$f"
done

[ -d "$REMOTE_BASE_DIR" ] || exit 0
base=$(cd "$REMOTE_BASE_DIR" && pwd -P)

# Processes of the deployment: working directory or an argument inside base.
leftovers() {
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "$d/status" 2>/dev/null)
    [ "$state" = "Z" ] && continue
    cwd=$(readlink "$d/cwd" 2>/dev/null) || cwd=""
    hit=""
    case "$cwd" in "$base" | "$base"/*) hit=1 ;; esac
    if [ -z "$hit" ] && [ -r "$d/cmdline" ]; then
      if tr '\000' '\n' <"$d/cmdline" 2>/dev/null | grep -q -F -x -e "$base" ||
        tr '\000' '\n' <"$d/cmdline" 2>/dev/null | grep -q -F -e "$base/"; then
        hit=1
      fi
    fi
    [ -n "$hit" ] && echo "$pid"
  done
}

# Whole process groups only where the group's leader is one of the deployment's
# processes (a server, a supervisor): a stray process in somebody's shell job
# must not take that shell with it.
pids=" $(leftovers | tr '\n' ' ') "
for pid in $pids; do
  pgid=$(sed -n 's/^NSpgid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
  case "$pids" in *" $pgid "*) stop_group "$pgid" ;; esac
done
for pid in $(leftovers); do kill -TERM "$pid" 2>/dev/null; done
sleep 0.5
for pid in $(leftovers); do kill -KILL "$pid" 2>/dev/null; done
sleep 0.2
left=$(leftovers)
if [ -n "$left" ]; then
  for pid in $left; do
    echo "featctl local target: process $pid of the deployment survives: $(tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)" >&2
  done
  exit 1
fi
exit 0
