#!/bin/sh
# Start featctl's PostgreSQL cluster: initdb once (the role DB_USER with the
# password featctl generated, scram-sha-256), TCP only, TLS only (ssl = on
# with the server certificate featctl generated; pg_hba admits hostssl and
# rejects hostnossl), data and log in DATA_DIR, then the database DATABASE.
# PostgreSQL refuses to run as root: then the cluster runs as the `postgres`
# user (featctl gives it a data directory that user can reach). Idempotent;
# the network and TLS settings are written again on every start, so a cluster
# made by an earlier featctl (plain text) serves TLS only after its restart.
set -eu

: "${DATA_DIR:?}" "${PORT:?}" "${PASSWORD_FILE:?}" "${PG_BIN:?}" "${DATABASE:?}" "${DB_USER:?}"
: "${TLS_CA:?}" "${TLS_CERT:?}" "${TLS_KEY:?}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"

for tool in initdb pg_ctl psql; do
  if [ ! -x "$PG_BIN/$tool" ]; then
    echo "featctl store server: $PG_BIN/$tool not found (install PostgreSQL's server package, e.g. postgresql-15)" >&2
    exit 1
  fi
done
for f in "$TLS_CA" "$TLS_CERT" "$TLS_KEY"; do
  if [ ! -f "$f" ]; then
    echo "featctl store server: TLS file $f does not exist (featctl generates it: run featctl deploy)" >&2
    exit 1
  fi
done
as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "featctl store server: PostgreSQL cannot run as root and there is no postgres user" >&2
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
    echo "featctl store server: initdb failed: $(tail -n 1 "$DATA_DIR.initdb.log")" >&2
    rm -f "$pw"
    exit 1
  fi
  rm -f "$pw" "$DATA_DIR.initdb.log"
fi
# Written by the cluster's user (0600 in its data directory): the server's own
# copies of the certificate and key (PostgreSQL insists the key is the server
# user's and 0600), the network and TLS settings, and who may connect how.
write() { as sh -c 'umask 077 && cat > "$1.tmp" && mv "$1.tmp" "$1"' sh "$1"; }
write "$DATA_DIR/server.crt" <"$TLS_CERT"
write "$DATA_DIR/server.key" <"$TLS_KEY"
# TCP on loopback only, no Unix socket: nothing of it outside DATA_DIR.
write "$DATA_DIR/featctl.conf" <<CONF
listen_addresses = '$LISTEN_ADDRESS'
port = $PORT
unix_socket_directories = ''
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
write "$DATA_DIR/pg_hba.conf" <<HBA
# featctl: TLS only. A connection without TLS is rejected whoever asks.
hostssl   all  all  all  scram-sha-256
hostnossl all  all  all  reject
HBA
# Included last, so it wins over what an earlier featctl appended.
if ! grep -q "^include_if_exists = 'featctl.conf'" "$DATA_DIR/postgresql.conf"; then
  as sh -c 'cat >> "$1/postgresql.conf"' sh "$DATA_DIR" <<'CONF'
include_if_exists = 'featctl.conf'
CONF
fi
# With AGENT_DIR (the directory holding featctl's agent package) the server
# runs under featctl's supervisor (supervise.py, as the cluster's user, from a
# copy of it in DATA_DIR/featctl, its pid there too): a server that dies is
# started again within seconds, recovering from its WAL. Without, pg_ctl
# daemonizes it as before.
AGENT_DIR="${AGENT_DIR:-}"
[ -f "$AGENT_DIR/featctl_agent/supervise.py" ] || AGENT_DIR=""
supervisor="$DATA_DIR/featctl/supervise.pid"
supervised() { [ -f "$supervisor" ] && kill -0 "$(cat "$supervisor")" 2>/dev/null; }
if supervised || { [ -z "$AGENT_DIR" ] && as "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1; }; then
  # Already running: pg_hba and the TLS files take effect on a reload.
  as "$PG_BIN/pg_ctl" -D "$DATA_DIR" reload >/dev/null 2>&1 || true
elif [ -n "$AGENT_DIR" ]; then
  # A server an earlier featctl started without a supervisor: stopped first.
  as "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  as mkdir -p "$DATA_DIR/featctl/featctl_agent"
  for f in __init__.py common.py supervise.py; do
    write "$DATA_DIR/featctl/featctl_agent/$f" <"$AGENT_DIR/featctl_agent/$f"
  done
  py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3)
  as env PYTHONPATH="$DATA_DIR/featctl" "$py" -m featctl_agent.supervise --pidfile "$supervisor" \
    --log "$DATA_DIR/postgres.log" --cwd "$DATA_DIR" --stop-signal INT -- "$PG_BIN/postgres" -D "$DATA_DIR" \
    </dev/null >/dev/null 2>&1
  # The supervisor writes its pid file once it runs (it detaches first).
  i=0
  until supervised || [ "$i" -gt 150 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  i=0
  until "$PG_BIN/pg_isready" -q -h "$LISTEN_ADDRESS" -p "$PORT" -t 2; do
    i=$((i + 1))
    if [ "$i" -gt 60 ] || ! supervised; then
      echo "featctl store server: PostgreSQL did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$DATA_DIR/postgres.log" 2>/dev/null)" >&2
      supervised && kill -TERM "$(cat "$supervisor")"
      exit 1
    fi
    sleep 1
  done
else
  if ! as "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$DATA_DIR/postgres.log" -w -t 60 start >/dev/null 2>&1; then
    echo "featctl store server: PostgreSQL did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$DATA_DIR/postgres.log" 2>/dev/null)" >&2
    exit 1
  fi
fi
PGPASSWORD="$(cat "$PASSWORD_FILE")"
# Over TLS like every client, checked against featctl's CA (not the system's store).
PGSSLMODE=verify-ca
PGSSLROOTCERT="$TLS_CA"
export PGPASSWORD PGSSLMODE PGSSLROOTCERT
if ! "$PG_BIN/psql" -h "$LISTEN_ADDRESS" -p "$PORT" -U "$DB_USER" -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
  "$PG_BIN/psql" -h "$LISTEN_ADDRESS" -p "$PORT" -U "$DB_USER" -d postgres -qc "CREATE DATABASE \"$DATABASE\"" >/dev/null
fi
