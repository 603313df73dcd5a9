#!/bin/sh
# Stop the local target's PostgreSQL cluster and remove its data (not with KEEP_DATA=1:
# a restart). Safe to run twice.
set -u

: "${DATA_DIR:?}" "${PG_BIN:?}"
as() { "$@"; }
[ "$(id -u)" = 0 ] && as() { runuser -u postgres -- "$@"; }
# Its supervisor first (it would start it again): it stops the server with a
# fast shutdown (SIGINT) and exits.
supervisor="$DATA_DIR/featctl/supervise.pid"
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
fi
if [ -f "$DATA_DIR/postmaster.pid" ]; then
  as "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    kill -KILL "$(head -n 1 "$DATA_DIR/postmaster.pid")" 2>/dev/null
fi
[ "${KEEP_DATA:-}" = 1 ] && exit 0
rm -rf "$DATA_DIR"
# As root the cluster's data lives in a directory of its own featctl made
# (start-postgres.sh): root's, not a link; remove it too.
parent=$(dirname "$DATA_DIR")
case "$parent" in
/var/tmp/featctl-postgres-*)
  if [ "$(id -u)" = 0 ] && [ -d "$parent" ] && [ ! -L "$parent" ] && [ "$(stat -c %u "$parent")" = 0 ]; then
    rm -rf "$parent"
  fi
  ;;
esac
exit 0
