#!/bin/sh
# Take the deployment's network down: every veth a guest left on the bridge
# (systemd-nspawn removes its own when the guest stops), the bridge with its
# address and routes, and, when no featctl bridge is left, the uplinks'
# forwarding net-up.sh turned on and its state directory. Safe to run twice.
set -u

: "${BRIDGE:?}"
STATE="${STATE:-/run/featctl-vm-net}"

if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  for port in "/sys/class/net/$BRIDGE/brif/"*; do
    [ -e "$port" ] && ip link del dev "${port##*/}" 2>/dev/null
  done
  ip link del dev "$BRIDGE" || {
    echo "featctl vm target: cannot remove the bridge $BRIDGE" >&2
    exit 1
  }
fi
[ -d "$STATE" ] || exit 0
exec 9>"$STATE/lock"
flock 9
if ! ip -o link show type bridge | grep -q ': fcbr[0-9a-f]*[:@]'; then
  if [ -f "$STATE/forwarding" ]; then
    sort -u "$STATE/forwarding" | while read -r dev; do
      [ -w "/proc/sys/net/ipv4/conf/$dev/forwarding" ] && echo 0 >"/proc/sys/net/ipv4/conf/$dev/forwarding"
    done
  fi
  # The last one: nothing of featctl's stays in /run either.
  rm -rf "$STATE"
fi
exit 0
