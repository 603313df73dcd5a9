#!/bin/sh
# Start featctl's Redis: TLS only (no plain-text port), with the server
# certificate featctl generated and the password featctl generated
# (requirepass, from a 0600 config file: never on a command line), its data,
# log and copies of the certificate and key in DATA_DIR. With AGENT_DIR (the
# directory holding featctl's agent package, featctl_agent/) it runs under
# featctl's supervisor (supervise.py: pid and log in DATA_DIR/supervise.*),
# which starts it again within seconds when it dies (its append-only file
# keeps what it held); without, daemonized as before. Idempotent: a Redis (or
# its supervisor) already running from this directory is left alone, except
# an unsupervised one when AGENT_DIR is given: that one is restarted supervised.
set -eu

: "${DATA_DIR:?}" "${PORT:?}" "${PASSWORD_FILE:?}" "${TLS_CA:?}" "${TLS_CERT:?}" "${TLS_KEY:?}"
REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"

if [ ! -x "$REDIS_SERVER" ]; then
  echo "featctl store server: redis-server not found at $REDIS_SERVER (install the redis-server package)" >&2
  exit 1
fi
for f in "$TLS_CA" "$TLS_CERT" "$TLS_KEY"; do
  if [ ! -f "$f" ]; then
    echo "featctl store server: TLS file $f does not exist (featctl generates it: run featctl deploy)" >&2
    exit 1
  fi
done
umask 077
mkdir -p "$DATA_DIR"
pidfile="$DATA_DIR/redis.pid"
supervisor="$DATA_DIR/supervise.pid"
AGENT_DIR="${AGENT_DIR:-}"
[ -f "$AGENT_DIR/featctl_agent/supervise.py" ] || AGENT_DIR=""
# The system's interpreter first: the supervisor must outlive any virtualenv or shim.
python3_path() { if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi; }
if [ -f "$supervisor" ] && kill -0 "$(cat "$supervisor")" 2>/dev/null; then
  exit 0
fi
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  [ -n "$AGENT_DIR" ] || exit 0
  # Started by an earlier featctl without a supervisor: restarted under one.
  DATA_DIR="$DATA_DIR" KEEP_DATA=1 sh "$(dirname "$0")/stop-redis.sh"
fi
# Redis config strings in double quotes, with \ and " escaped.
qs() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
# The server's own copies (0600, beside its data): the workspace's files may change under it.
mkdir -p "$DATA_DIR/tls"
cp "$TLS_CA" "$DATA_DIR/tls/ca.crt"
cp "$TLS_CERT" "$DATA_DIR/tls/server.crt"
cp "$TLS_KEY" "$DATA_DIR/tls/server.key"
{
  echo "bind $LISTEN_ADDRESS"
  # TLS only: no plain-text port; clients log in with the password, not a certificate.
  echo "port 0"
  echo "tls-port $PORT"
  echo "tls-cert-file $(qs "$DATA_DIR/tls/server.crt")"
  echo "tls-key-file $(qs "$DATA_DIR/tls/server.key")"
  echo "tls-ca-cert-file $(qs "$DATA_DIR/tls/ca.crt")"
  echo "tls-auth-clients no"
  echo "protected-mode yes"
  echo "requirepass $(qs "$(cat "$PASSWORD_FILE")")"
  if [ -n "$AGENT_DIR" ]; then echo "daemonize no"; else echo "daemonize yes"; fi
  echo "pidfile $(qs "$pidfile")"
  echo "dir $(qs "$DATA_DIR")"
  echo "logfile $(qs "$DATA_DIR/redis.log")"
  # The online store survives a restart of Redis (append-only file in DATA_DIR).
  echo "appendonly yes"
  echo 'save ""'
} >"$DATA_DIR/redis.conf.tmp"
mv "$DATA_DIR/redis.conf.tmp" "$DATA_DIR/redis.conf"
rm -f "$pidfile"
if [ -n "$AGENT_DIR" ]; then
  PYTHONPATH="$AGENT_DIR" "$(python3_path)" -m featctl_agent.supervise --pidfile "$supervisor" \
    --log "$DATA_DIR/supervise.log" --cwd "$DATA_DIR" -- "$REDIS_SERVER" "$DATA_DIR/redis.conf" </dev/null >/dev/null 2>&1
else
  "$REDIS_SERVER" "$DATA_DIR/redis.conf"
fi
i=0
while [ ! -s "$pidfile" ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then
    echo "featctl store server: redis-server did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$DATA_DIR/redis.log" 2>/dev/null)" >&2
    DATA_DIR="$DATA_DIR" KEEP_DATA=1 sh "$(dirname "$0")/stop-redis.sh"
    exit 1
  fi
  sleep 0.1
done
