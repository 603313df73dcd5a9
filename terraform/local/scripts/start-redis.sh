#!/bin/sh
# Start the local target's Redis on loopback with the password featctl
# generated (requirepass, from a 0600 config file: never on a command line),
# its data and log in DATA_DIR. Idempotent: a Redis already running from this
# directory is left alone.
set -eu

: "${DATA_DIR:?}" "${PORT:?}" "${PASSWORD_FILE:?}"
REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"

if [ ! -x "$REDIS_SERVER" ]; then
  echo "featctl local target: redis-server not found at $REDIS_SERVER (install the redis-server package)" >&2
  exit 1
fi
umask 077
mkdir -p "$DATA_DIR"
pidfile="$DATA_DIR/redis.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  exit 0
fi
# Redis config strings in double quotes, with \ and " escaped.
qs() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
  echo "bind $LISTEN_ADDRESS"
  echo "port $PORT"
  echo "protected-mode yes"
  echo "requirepass $(qs "$(cat "$PASSWORD_FILE")")"
  echo "daemonize yes"
  echo "pidfile $(qs "$pidfile")"
  echo "dir $(qs "$DATA_DIR")"
  echo "logfile $(qs "$DATA_DIR/redis.log")"
  # The online store survives a restart of Redis (append-only file in DATA_DIR).
  echo "appendonly yes"
  echo 'save ""'
} >"$DATA_DIR/redis.conf.tmp"
mv "$DATA_DIR/redis.conf.tmp" "$DATA_DIR/redis.conf"
rm -f "$pidfile"
"$REDIS_SERVER" "$DATA_DIR/redis.conf"
i=0
while [ ! -s "$pidfile" ]; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then
    echo "featctl local target: redis-server did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$DATA_DIR/redis.log" 2>/dev/null)" >&2
    exit 1
  fi
  sleep 0.1
done
