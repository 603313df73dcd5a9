#!/bin/sh
# Remove a guest entirely: stop it, unmount its disk, delete its directory
# (the disk image with the seed and its host key, the logs). Fails when
# a process still runs inside it, so `terraform destroy` (and `featctl
# destroy`) say so instead of leaving it behind. Safe to run twice.
set -u

: "${MACHINE_DIR:?}"
here=$(dirname "$0")

[ -d "$MACHINE_DIR" ] || exit 0
MACHINE_DIR="$MACHINE_DIR" sh "$here/stop-guest.sh"

inside() {
  for d in /proc/[0-9]*; do
    r=$(readlink "$d/root" 2>/dev/null) || continue
    case "$r" in "$MACHINE_DIR/root" | "$MACHINE_DIR/root/"*) echo "${d#/proc/}" ;; esac
  done
}
left=$(inside)
if [ -n "$left" ]; then
  for p in $left; do kill -KILL "$p" 2>/dev/null; done
  sleep 0.5
  left=$(inside)
  if [ -n "$left" ]; then
    echo "featctl vm target: process(es) $(echo $left) still run in the guest at $MACHINE_DIR; nothing removed" >&2
    exit 1
  fi
fi
# The overlay, then the file systems under it (their loop devices go with them).
for m in "$MACHINE_DIR/root" "$MACHINE_DIR/disk" "$MACHINE_DIR/lower"; do
  if mountpoint -q "$m"; then
    umount "$m" 2>/dev/null || umount --lazy "$m" || {
      echo "featctl vm target: cannot unmount $m; nothing removed" >&2
      exit 1
    }
  fi
done
if [ -f "$MACHINE_DIR/disk.img" ] && [ -n "$(losetup -j "$MACHINE_DIR/disk.img" 2>/dev/null)" ]; then
  losetup -j "$MACHINE_DIR/disk.img" | cut -d: -f1 | while read -r dev; do losetup -d "$dev"; done
fi
rm -rf "$MACHINE_DIR"
exit 0
