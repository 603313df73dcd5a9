#!/bin/sh
# Boot a guest: systemd-nspawn with systemd as PID 1 on the guest's disk.
# Idempotent: a guest already running from this machine directory is left
# alone. The guest has a network namespace of its own: its end of a veth
# pair (host0) on the deployment's BRIDGE, configured by its cloud-init from
# the seed's network-config. This machine's resolvers are copied in (the
# guests' DNS goes out through the bridge's NAT, as their apt and PyPI): its
# resolv.conf, or systemd-resolved's uplink servers where resolv.conf names
# the resolved stub on loopback (which is not the guest's).
set -eu

: "${MACHINE_DIR:?}" "${MACHINE:?}" "${IMAGE_DIR:?}" "${CA_MOUNT:?}" "${BRIDGE:?}"
here=$(dirname "$0")
pidfile="$MACHINE_DIR/nspawn.pid"

running() {
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\000' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -x -F -e "--directory=$MACHINE_DIR/root"
}

if running; then
  exit 0
fi
if ! command -v systemd-nspawn >/dev/null 2>&1; then
  echo "featctl vm target: systemd-nspawn not found (apt-get install systemd-container)" >&2
  exit 1
fi
MACHINE_DIR="$MACHINE_DIR" IMAGE_DIR="$IMAGE_DIR" sh "$here/mount-disk.sh"

if [ ! -d "/sys/class/net/$BRIDGE/bridge" ]; then
  echo "featctl vm target: the deployment's bridge $BRIDGE is missing (featctl deploy brings the network back)" >&2
  exit 1
fi

resolv=copy-host
if grep -q -E '^nameserver[[:space:]]+127\.' /etc/resolv.conf 2>/dev/null && [ -f /run/systemd/resolve/resolv.conf ]; then
  resolv=copy-uplink
fi

# --register=no --keep-unit: no machined or system bus on the host needed
# (this machine's PID 1 need not be systemd). Its console is not needed either.
log="$MACHINE_DIR/guest.log"
setsid systemd-nspawn --quiet --directory="$MACHINE_DIR/root" --machine="$MACHINE" \
  --register=no --keep-unit --boot --console=passive --link-journal=no \
  --network-bridge="$BRIDGE" --resolv-conf="$resolv" \
  --bind-ro="$MACHINE_DIR/ca:$CA_MOUNT" </dev/null >>"$log" 2>&1 &
echo $! >"$pidfile"

# Boot has begun once systemd runs as the container's PID 1 (a child of
# nspawn); nspawn exiting first means it could not start the container.
pid=$(cat "$pidfile")
i=0
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "featctl vm target: the guest did not start: $(grep -v '^$' "$log" | tail -n 1)" >&2
    rm -f "$pidfile"
    exit 1
  fi
  child=$(pgrep -P "$pid" 2>/dev/null | head -n 1 || true)
  if [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then
    break
  fi
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then
    echo "featctl vm target: the guest's systemd did not start within 30 s: $(grep -v '^$' "$log" | tail -n 1)" >&2
    exit 1
  fi
  sleep 0.1
done
