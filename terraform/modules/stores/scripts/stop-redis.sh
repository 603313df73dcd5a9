#!/bin/sh
# Stop the local target's Redis and remove its data (not with KEEP_DATA=1:
# a restart). Safe to run twice.
set -u

: "${DATA_DIR:?}"
# Its supervisor first (it would start it again); it stops the server itself.
supervisor="$DATA_DIR/supervise.pid"
if [ -f "$supervisor" ]; then
  spid="$(cat "$supervisor")"
  if kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null
    i=0
    while kill -0 "$spid" 2>/dev/null && [ "$i" -lt 250 ]; do
      i=$((i + 1))
      sleep 0.1
    done
    kill -KILL "$spid" 2>/dev/null
  fi
  rm -f "$supervisor"
fi
pidfile="$DATA_DIR/redis.pid"
if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
      i=$((i + 1))
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
[ "${KEEP_DATA:-}" = 1 ] || rm -rf "$DATA_DIR"
exit 0
