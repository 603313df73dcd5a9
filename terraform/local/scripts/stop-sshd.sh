#!/bin/sh
# Stop the local target's sshd and the sessions it spawned. Safe to run twice.
set -u

: "${STATE_DIR:?}"

if [ -f "$STATE_DIR/sshd.pid" ]; then
  pid="$(cat "$STATE_DIR/sshd.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    # Session processes are children of the listener.
    pkill -TERM -P "$pid" 2>/dev/null
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
