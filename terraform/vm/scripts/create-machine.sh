#!/bin/sh
# Create a guest's disk (its own file system, holding an overlay over the base
# image) and its NoCloud seed (user-data, vendor-data, meta-data, network-config).
# The seed holds the host's private key: the machine directory is 0700 root
# and the seed files 0600, as the metadata of a cloud VM is its own.
set -eu

: "${MACHINE_DIR:?}" "${IMAGE_DIR:?}" "${USER_DATA:?}" "${VENDOR_DATA:?}" "${META_DATA:?}" "${NETWORK:?}" "${CA_CERT:?}"
here=$(dirname "$0")

if [ ! -f "$IMAGE_DIR/.complete" ]; then
  echo "featctl vm target: the base image $IMAGE_DIR is not complete" >&2
  exit 1
fi
if [ -e "$MACHINE_DIR" ]; then
  # What an interrupted create (or an earlier instance) left: replace it.
  MACHINE_DIR="$MACHINE_DIR" sh "$here/destroy-machine.sh"
fi

umask 077
mkdir -p "$MACHINE_DIR/lower" "$MACHINE_DIR/disk" "$MACHINE_DIR/root" "$MACHINE_DIR/ca"
chmod 700 "$MACHINE_DIR"
# A sparse file: it takes only what the guest writes (the Feast environment,
# releases), up to DISK_SIZE GB.
truncate -s "${DISK_SIZE:-20}G" "$MACHINE_DIR/disk.img"
if ! mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$MACHINE_DIR/disk.img" 2>"$MACHINE_DIR/mkfs.log"; then
  echo "featctl vm target: cannot make the guest's disk: $(tail -n 1 "$MACHINE_DIR/mkfs.log")" >&2
  exit 1
fi
MACHINE_DIR="$MACHINE_DIR" IMAGE_DIR="$IMAGE_DIR" sh "$here/mount-disk.sh"

# Written through the overlay, so the directories above the seed keep the
# image's modes (a directory made in the upper layer would override them).
seed="$MACHINE_DIR/root/var/lib/cloud/seed/nocloud"
install -d -m 0700 "$seed"
printf '%s' "$USER_DATA" >"$seed/user-data"
printf '%s' "$VENDOR_DATA" >"$seed/vendor-data"
printf '%s' "$META_DATA" >"$seed/meta-data"
printf '%s' "$NETWORK" >"$seed/network-config"
chmod 0600 "$seed/user-data" "$seed/vendor-data" "$seed/meta-data" "$seed/network-config"

# The stores' CA, bind-mounted read-only into the guest for the user-data's ca_url.
cp "$CA_CERT" "$MACHINE_DIR/ca/ca.crt.tmp"
chmod 0644 "$MACHINE_DIR/ca/ca.crt.tmp"
mv "$MACHINE_DIR/ca/ca.crt.tmp" "$MACHINE_DIR/ca/ca.crt"
chmod 0755 "$MACHINE_DIR/ca"
