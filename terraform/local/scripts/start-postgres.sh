#!/bin/sh
# Start the local target's PostgreSQL cluster on loopback: initdb once (the
# role DB_USER with the password featctl generated, scram-sha-256), TCP only,
# data and log in DATA_DIR, then the database DATABASE. PostgreSQL refuses to
# run as root: then the cluster runs as the `postgres` user (featctl gives it a
# data directory that user can reach). Idempotent.
set -eu

: "${DATA_DIR:?}" "${PORT:?}" "${PASSWORD_FILE:?}" "${PG_BIN:?}" "${DATABASE:?}" "${DB_USER:?}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"

for tool in initdb pg_ctl psql; do
  if [ ! -x "$PG_BIN/$tool" ]; then
    echo "featctl local target: $PG_BIN/$tool not found (install PostgreSQL's server package, e.g. postgresql-15)" >&2
    exit 1
  fi
done
as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "featctl local target: PostgreSQL cannot run as root and there is no postgres user" >&2
    exit 1
  fi
  as() { runuser -u postgres -- "$@"; }
fi
umask 077
if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$DATA_DIR"
  pw="$DATA_DIR.initdb-password"
  cp "$PASSWORD_FILE" "$pw"
  [ "$(id -u)" = 0 ] && chown postgres: "$pw"
  if ! as "$PG_BIN/initdb" -D "$DATA_DIR" -U "$DB_USER" --pwfile="$pw" --auth=scram-sha-256 -E UTF8 \
    --no-instructions >"$DATA_DIR.initdb.log" 2>&1; then
    echo "featctl local target: initdb failed: $(tail -n 1 "$DATA_DIR.initdb.log")" >&2
    rm -f "$pw"
    exit 1
  fi
  rm -f "$pw" "$DATA_DIR.initdb.log"
  # TCP on loopback only, no Unix socket: nothing of it outside DATA_DIR.
  as sh -c 'cat >> "$1/postgresql.conf"' sh "$DATA_DIR" <<CONF
listen_addresses = '$LISTEN_ADDRESS'
port = $PORT
unix_socket_directories = ''
CONF
fi
if ! as "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1; then
  if ! as "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$DATA_DIR/postgres.log" -w -t 60 start >/dev/null 2>&1; then
    echo "featctl local target: PostgreSQL did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$DATA_DIR/postgres.log" 2>/dev/null)" >&2
    exit 1
  fi
fi
PGPASSWORD="$(cat "$PASSWORD_FILE")"
export PGPASSWORD
if ! "$PG_BIN/psql" -h "$LISTEN_ADDRESS" -p "$PORT" -U "$DB_USER" -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
  "$PG_BIN/psql" -h "$LISTEN_ADDRESS" -p "$PORT" -U "$DB_USER" -d postgres -qc "CREATE DATABASE \"$DATABASE\"" >/dev/null
fi
