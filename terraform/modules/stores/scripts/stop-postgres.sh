#!/bin/sh
# Stop the local target's PostgreSQL cluster and remove its data (not with KEEP_DATA=1:
# a restart). Safe to run twice.
set -u

: "${DATA_DIR:?}" "${PG_BIN:?}"
as() { "$@"; }
[ "$(id -u)" = 0 ] && as() { runuser -u postgres -- "$@"; }
if [ -f "$DATA_DIR/postmaster.pid" ]; then
  as "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    kill -KILL "$(head -n 1 "$DATA_DIR/postmaster.pid")" 2>/dev/null
fi
[ "${KEEP_DATA:-}" = 1 ] || rm -rf "$DATA_DIR"
exit 0
