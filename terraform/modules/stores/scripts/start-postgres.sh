#!/bin/sh
# Start featctl's PostgreSQL cluster: initdb once (the role DB_USER with the
# password featctl generated, scram-sha-256), TCP only, TLS only (ssl = on
# with the server certificate featctl generated; pg_hba admits hostssl and
# rejects hostnossl), data and log in DATA_DIR, then the database DATABASE.
# PostgreSQL refuses to run as root: then the cluster runs as the `postgres`
# user, in DATA_DIR=/var/tmp/featctl-postgres-<random>/data (featctl chooses
# the name once): this script makes that parent with mkdir (which never
# follows nor reuses what another user put there), root's and 0711, and
# refuses a parent that is a link, someone else's, or writable by others. The
# files initdb needs beside DATA_DIR (the password, its log) live in that
# parent, created anew (noclobber), never at a name another user can guess or
# write. Idempotent;
# the network and TLS settings are written again on every start, so a cluster
# made by an earlier featctl (plain text) serves TLS only after its restart.
set -eu

: "${DATA_DIR:?}" "${PORT:?}" "${PASSWORD_FILE:?}" "${PG_BIN:?}" "${DATABASE:?}" "${DB_USER:?}"
: "${TLS_CA:?}" "${TLS_CERT:?}" "${TLS_KEY:?}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"
CLIENT_CIDR="${CLIENT_CIDR:-all}"

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
fail() {
  echo "featctl store server: $*" >&2
  exit 1
}
# $1 is a directory (not a link) of uid $2 that only its owner may write.
private_dir() {
  [ -d "$1" ] && [ ! -L "$1" ] || return 1
  [ "$(stat -c %u "$1")" = "$2" ] || return 1
  [ $((0$(stat -c %a "$1") & 022)) -eq 0 ]
}
me=$(id -u)
parent=$(dirname "$DATA_DIR")
if [ "$me" = 0 ] && [ ! -e "$parent" ] && [ ! -L "$parent" ]; then
  mkdir -m 0711 "$parent" || fail "cannot create $parent"
fi
private_dir "$parent" "$me" ||
  fail "$parent is not a private directory of uid $me (a link, another user's, or writable by others): refusing to use it"
cluster_user=$me
[ "$me" = 0 ] && cluster_user=$(id -u postgres)
if [ -L "$DATA_DIR" ] || { [ -e "$DATA_DIR" ] && ! private_dir "$DATA_DIR" "$cluster_user"; }; then
  fail "$DATA_DIR is not the cluster user's private directory: refusing to use it"
fi
if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
  rm -rf "$DATA_DIR"
  mkdir -m 0700 "$DATA_DIR"
  [ "$me" = 0 ] && chown postgres: "$DATA_DIR"
  pw="$parent/.initdb-password"
  log="$parent/.initdb.log"
  rm -f "$pw" "$log"
  (set -C && cat "$PASSWORD_FILE" >"$pw") || fail "cannot write $pw"
  [ "$me" = 0 ] && chown postgres: "$pw"
  if ! (set -C && as "$PG_BIN/initdb" -D "$DATA_DIR" -U "$DB_USER" --pwfile="$pw" --auth=scram-sha-256 -E UTF8 \
    --no-instructions >"$log" 2>&1); then
    echo "featctl store server: initdb failed: $(tail -n 1 "$log")" >&2
    rm -f "$pw"
    exit 1
  fi
  rm -f "$pw" "$log"
fi
# Written by the cluster's user (0600 in its data directory): the server's own
# copies of the certificate and key (PostgreSQL insists the key is the server
# user's and 0600), the network and TLS settings, and who may connect how.
write() { as sh -c 'umask 077 && cat > "$1.tmp" && mv "$1.tmp" "$1"' sh "$1"; }
write "$DATA_DIR/server.crt" <"$TLS_CERT"
write "$DATA_DIR/server.key" <"$TLS_KEY"
# TCP on LISTEN_ADDRESS only (loopback, or the vm guests' bridge), no Unix
# socket: nothing of it outside DATA_DIR.
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
# featctl: TLS only (clients: $CLIENT_CIDR). A connection without TLS is rejected whoever asks.
hostssl   all  all  $CLIENT_CIDR  scram-sha-256
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
