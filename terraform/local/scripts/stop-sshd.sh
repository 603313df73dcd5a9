#!/bin/sh
# Stop the local target: every process the deployment started under
# REMOTE_BASE_DIR (found by their pid files), then sshd. Safe to run twice.
set -u

: "${STATE_DIR:?}" "${REMOTE_BASE_DIR:?}"

stop_pid() {
  pid="$1"
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # The process leads its own group (setsid): signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  return 0
}

if [ -d "$REMOTE_BASE_DIR/run" ]; then
  for f in "$REMOTE_BASE_DIR"/run/*.pid; do
    [ -f "$f" ] || continue
    stop_pid "$(cat "$f")"
    rm -f "$f"
  done
fi

if [ -f "$STATE_DIR/sshd.pid" ]; then
  pid="$(cat "$STATE_DIR/sshd.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
      i=$((i + 1))
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$STATE_DIR/sshd.pid"
fi
exit 0
