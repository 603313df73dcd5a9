#!/bin/sh
# Mount a guest's disk unless it is mounted: the base image read-only below,
# the guest's own ext4 file system (an image file on a loop device, which
# survives a reboot of this machine and goes with one unlink) above, joined
# by overlayfs at root/.
set -eu

: "${MACHINE_DIR:?}" "${IMAGE_DIR:?}"

fail() {
  echo "featctl vm target: cannot mount the guest's disk: $1" >&2
  exit 1
}

if ! mountpoint -q "$MACHINE_DIR/lower"; then
  mount -o loop,ro "$IMAGE_DIR/rootfs.ext4" "$MACHINE_DIR/lower" 2>"$MACHINE_DIR/mount.log" ||
    fail "the base image: $(tail -n 1 "$MACHINE_DIR/mount.log")"
fi
if ! mountpoint -q "$MACHINE_DIR/disk"; then
  mount -o loop "$MACHINE_DIR/disk.img" "$MACHINE_DIR/disk" 2>"$MACHINE_DIR/mount.log" ||
    fail "$(tail -n 1 "$MACHINE_DIR/mount.log")"
fi
if [ ! -d "$MACHINE_DIR/disk/upper" ]; then
  mkdir -p "$MACHINE_DIR/disk/upper" "$MACHINE_DIR/disk/work"
  # The upper layer's top is the guest's "/": the image's mode, not ours.
  chmod --reference="$MACHINE_DIR/lower" "$MACHINE_DIR/disk/upper"
fi
if ! mountpoint -q "$MACHINE_DIR/root"; then
  mount -t overlay overlay \
    -o "lowerdir=$MACHINE_DIR/lower,upperdir=$MACHINE_DIR/disk/upper,workdir=$MACHINE_DIR/disk/work" \
    "$MACHINE_DIR/root" 2>"$MACHINE_DIR/mount.log" || fail "overlayfs: $(tail -n 1 "$MACHINE_DIR/mount.log")"
fi
