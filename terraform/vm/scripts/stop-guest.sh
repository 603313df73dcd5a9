#!/bin/sh
# Stop a guest: nspawn asks its systemd to halt (a clean shutdown of every
# unit); a guest that does not halt in time loses its PID namespace (SIGKILL
# to its PID 1 ends every process in it). Safe to run twice.
set -u

: "${MACHINE_DIR:?}"
pidfile="$MACHINE_DIR/nspawn.pid"
pid=$(cat "$pidfile" 2>/dev/null) || exit 0

# Our nspawn, still running: a zombie (its exit not yet collected by this
# machine's init, which may take a while) has stopped.
ours() {
  kill -0 "$pid" 2>/dev/null &&
    [ "$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)" != Z ] &&
    tr '\000' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -x -F -e "--directory=$MACHINE_DIR/root"
}

if [ -n "$pid" ] && ours; then
  kill -TERM "$pid" 2>/dev/null
  i=0
  while ours && [ "$i" -lt 600 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  if ours; then
    init=$(pgrep -P "$pid" 2>/dev/null | head -n 1 || true)
    [ -n "$init" ] && kill -KILL "$init" 2>/dev/null
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -f "$pidfile"
exit 0
