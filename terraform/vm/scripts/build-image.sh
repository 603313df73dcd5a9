#!/bin/sh
# Build the vm target's base image (a Debian root file system) unless the
# cache already holds it. Deployments share the cache, so the build runs under
# a lock and lands with a rename: a reader never sees half an image.
set -eu

: "${IMAGE_DIR:?}" "${SUITE:?}" "${MIRROR:?}" "${PACKAGES:?}"

if [ -f "$IMAGE_DIR/.complete" ]; then
  exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "featctl vm target: mmdebstrap not found (apt-get install mmdebstrap) to build the base image" >&2
  exit 1
fi

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
# The image is what any cloud image is: no SSH host keys of its own (the
# user-data installs featctl's), cloud-init reading only the NoCloud seed.
if ! mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='printf "datasource_list: [ NoCloud, None ]\n" > "$1/etc/cloud/cloud.cfg.d/90-featctl-vm.cfg"' \
  --customize-hook=': > "$1/etc/machine-id"' \
  "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp.log" 2>&1; then
  echo "featctl vm target: building the base image failed: $(grep -E '^E:' "$tmp.log" | tail -n 1 || tail -n 1 "$tmp.log")" >&2
  rm -rf "$tmp"
  exit 1
fi
printf '%s\n' "$PACKAGES" >"$tmp/packages"
touch "$tmp/.complete"
mv "$tmp" "$IMAGE_DIR"
rm -f "$tmp.log"
