#!/bin/sh
# Load (or with DELETE=1 remove) the deployment's nftables table, its own so
# that removing it removes every rule of its and nobody else's:
#   postrouting  masquerade the subnet's traffic that leaves this machine
#                (apt and PyPI through this machine's uplink, DNS);
#   forward      into the subnet only replies and the subnet's own traffic
#                (bridged frames pass here too when br_netfilter is loaded);
#                out of the bridge only the subnet's addresses;
#   input        from the guests to this machine only the stores' PORTS on
#                the bridge's address (and ping, and replies to this
#                machine's SSH); the bridge's address answers nobody else.
# Loaded in one transaction: a reload never leaves the guests without NAT.
set -eu

: "${BRIDGE:?}"
table="featctl_$BRIDGE"
if [ "${DELETE:-}" = 1 ]; then
  command -v nft >/dev/null 2>&1 || exit 0
  nft list table ip "$table" >/dev/null 2>&1 || exit 0
  nft delete table ip "$table"
  exit 0
fi
: "${CIDR:?}" "${GATEWAY:?}"
if ! command -v nft >/dev/null 2>&1; then
  echo "featctl vm target: nft not found (apt-get install nftables; scripts/bootstrap --dev installs it) for the guests' NAT" >&2
  exit 1
fi
stores=""
if [ -n "${PORTS:-}" ]; then
  stores="iifname \"$BRIDGE\" ip saddr $CIDR ip daddr $GATEWAY tcp dport { $PORTS } accept"
fi
nft -f - <<NFT
table ip $table
delete table ip $table
table ip $table {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $CIDR ip daddr != $CIDR masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr $CIDR ct state established,related accept
    ip daddr $CIDR ip saddr $CIDR accept
    ip daddr $CIDR drop
    iifname "$BRIDGE" ip saddr != $CIDR drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "$BRIDGE" ct state established,related accept
    $stores
    iifname "$BRIDGE" ip daddr $GATEWAY icmp type echo-request accept
    iifname "$BRIDGE" drop
    ip daddr $GATEWAY iifname != { "lo", "$BRIDGE" } drop
  }
}
NFT
