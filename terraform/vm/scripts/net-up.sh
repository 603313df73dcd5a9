#!/bin/sh
# Bring the deployment's network up: its bridge (no STP: a guest's veth
# forwards the moment it is up) holding ADDRESS, the guests' gateway, and
# IPv4 only (no IPv6 on it: the firewall is IPv4's); IPv4 forwarding on the
# bridge and on this machine's uplinks (the interfaces of its default routes,
# where replies to the guests' NATed traffic come in). Which uplink flags it
# turned on is kept in $STATE, so net-down.sh turns them off again with the
# last featctl bridge. Idempotent. Refuses a subnet this machine already
# routes elsewhere (featctl chose it past every network it saw, once).
set -eu

: "${BRIDGE:?}" "${CIDR:?}" "${ADDRESS:?}"
STATE="${STATE:-/run/featctl-vm-net}"

if ! command -v ip >/dev/null 2>&1; then
  echo "featctl vm target: ip not found (apt-get install iproute2)" >&2
  exit 1
fi
others=$({ ip -4 route show table all root "$CIDR"; ip -4 route show table all match "$CIDR"; } |
  grep -v -e '^default' -e " dev $BRIDGE\$" -e " dev $BRIDGE " || true)
if [ -n "$others" ]; then
  echo "featctl vm target: the deployment's subnet $CIDR is in use on this machine ($(echo "$others" | head -n 1)); destroy and deploy again for another" >&2
  exit 1
fi

umask 077
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock 9
if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  ip link add name "$BRIDGE" type bridge stp_state 0 forward_delay 0
fi
if [ -w "/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6" ]; then
  echo 1 >"/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6"
fi
ip addr replace "$ADDRESS" dev "$BRIDGE"
ip link set dev "$BRIDGE" up
echo 1 >"/proc/sys/net/ipv4/conf/$BRIDGE/forwarding"
for dev in $(ip -4 route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | sort -u); do
  flag="/proc/sys/net/ipv4/conf/$dev/forwarding"
  if [ "$(cat "$flag")" = 0 ]; then
    echo 1 >"$flag"
    echo "$dev" >>"$STATE/forwarding"
  fi
done
