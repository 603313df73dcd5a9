#!/bin/sh
# Stop everything the deployment started on the local "machine": the feature
# servers of every release and the materialization schedule (found by their
# pid files under REMOTE_BASE_DIR). Safe to run twice.
set -u

: "${STATE_DIR:?}" "${REMOTE_BASE_DIR:?}"

stop_pid() {
  pid="$1"
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # Supervisors lead their own process group: signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  return 0
}

for f in "$REMOTE_BASE_DIR"/releases/*/.featctl/*.pid "$REMOTE_BASE_DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  stop_pid "$(cat "$f")"
  rm -f "$f"
done
exit 0
