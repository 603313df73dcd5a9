#!/bin/sh
# Build the vm target's base image unless the cache already holds it: a Debian
# root file system made by mmdebstrap, packed into one read-only ext4 image
# file (the guests loop-mount it as the lower layer of their disks). It is
# built in memory (/dev/shm) where there is room: unpacking its ~27k files
# onto this machine's disk took three times as long. Deployments share the
# cache, so the build runs under a lock and lands with a rename.
set -eu

: "${IMAGE_DIR:?}" "${SUITE:?}" "${MIRROR:?}" "${PACKAGES:?}"

if [ -f "$IMAGE_DIR/.complete" ]; then
  exit 0
fi
for tool in mmdebstrap mkfs.ext4; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "featctl vm target: $tool not found (scripts/bootstrap --dev installs it) to build the base image" >&2
    exit 1
  fi
done

umask 022
mkdir -p "$(dirname "$IMAGE_DIR")"
exec 9>"$IMAGE_DIR.lock"
flock 9
if [ -f "$IMAGE_DIR/.complete" ]; then
  exit 0 # built by another deployment while we waited
fi

tmp="$IMAGE_DIR.building"
rm -rf "$tmp" "$IMAGE_DIR"
mkdir -p "$tmp"
scratch=""
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pm /dev/shm | awk 'NR==2 {print $4}')" -gt 2048 ]; then
  scratch=$(mktemp -d /dev/shm/featctl-image.XXXXXX)
else
  scratch=$(mktemp -d "$tmp/scratch.XXXXXX")
fi
trap 'rm -rf "$scratch"' EXIT

# The image is what any cloud image is: no SSH host keys of its own (the
# user-data installs featctl's), cloud-init reading only the NoCloud seed,
# and systemd-networkd (Debian's systemd has it; the image has no ifupdown)
# enabled to apply the network cloud-init renders from the seed's
# network-config, as a cloud image's network daemon does.
if ! mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='printf "datasource_list: [ NoCloud, None ]\n" > "$1/etc/cloud/cloud.cfg.d/90-featctl-vm.cfg"' \
  --customize-hook=': > "$1/etc/machine-id"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
  "$SUITE" "$scratch/rootfs" "$MIRROR" >"$tmp/build.log" 2>&1; then
  echo "featctl vm target: building the base image failed: $(grep -E '^E:' "$tmp/build.log" | tail -n 1 || tail -n 1 "$tmp/build.log")" >&2
  rm -rf "$tmp"
  exit 1
fi
# Room for the files and their inodes; no journal: it is only ever mounted read-only.
used=$(du -sm "$scratch/rootfs" | cut -f1)
truncate -s "$((used * 3 / 2 + 256))M" "$tmp/rootfs.ext4"
if ! mkfs.ext4 -q -F -m 0 -O ^has_journal -L featctl-image -d "$scratch/rootfs" "$tmp/rootfs.ext4" 2>"$tmp/mkfs.log"; then
  echo "featctl vm target: packing the base image failed: $(tail -n 1 "$tmp/mkfs.log")" >&2
  rm -rf "$tmp"
  exit 1
fi
printf '%s\n' "$PACKAGES" >"$tmp/packages"
rm -f "$tmp/mkfs.log"
touch "$tmp/.complete"
mv "$tmp" "$IMAGE_DIR"
