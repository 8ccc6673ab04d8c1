#!/usr/bin/env bash
# Power cuts on a real kernel and file system (docs/design.md §12.5; the
# simulator is tests/powercut.rs): a durable queue on ext4 mounted from a
# loop device, a workload of durable senders and receivers on it, and now
# and then a copy of the loop device's backing file, taken with the
# workload stopped (SIGSTOP) wherever it was. A copy is a disk that kept
# every write the kernel gave the device and lost every page still dirty in
# the page cache: as after a power cut (or a kernel crash) at that moment on
# a disk that loses nothing it was given. Each copy
# is mounted (ext4 replays its journal), opened as after a reboot, recovered
# and drained, and checked against the workload's journal: every send that
# returned Ok before the copy began is there, acked, or its ack had begun.
#
#   sudo scripts/powercut-loop.sh [COPIES]     # 20 by default
#
# Needs root (losetup, mkfs.ext4, mount) and a loop device. What it cannot
# do: drop or reorder writes the device was given but not told to flush
# (dm-flakey, dm-log-writes need device-mapper); the simulator covers that.
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-20}"
work="${SHMQ_LOOP_WORK:-/var/tmp/shmq-powercut-loop}"
rm -rf "$work"; mkdir -p "$work/mnt" "$work/check"
img="$work/disk.img"
truncate -s 64M "$img"
mkfs.ext4 -q -F "$img"
dev=$(losetup -f --show "$img")
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  umount "$work/check" 2>/dev/null || true
  losetup -d "$dev" 2>/dev/null || true
  [ -n "${cdev:-}" ] && losetup -d "$cdev" 2>/dev/null || true
}
trap cleanup EXIT
mount "$dev" "$work/mnt"

cargo build -q --release --features failpoints --test powercut
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/powercut-* | grep -v "\.d$" | head -n 1)

export SHMQ_LOOP_JOURNAL="$work/journal" SHMQ_LOOP_STOP="$work/stop"
SHMQ_LOOP_QUEUE="$work/mnt/q" "$bin" loop_workload --ignored --exact --nocapture \
  >"$work/workload.log" 2>&1 &
wl=$!
sleep 1
for k in $(seq 1 "$copies"); do
  sleep "0.$((RANDOM % 9 + 1))"
  # The cut: the workload stopped (SIGSTOP) between two instructions, its
  # journal as it stands, the device as the kernel has written it so far
  # (a sync in flight goes on: a power cut in the middle of it).
  kill -STOP "$wl"
  before=$(stat -c %s "$SHMQ_LOOP_JOURNAL")
  cp --sparse=always "$img" "$work/copy-$k.img"
  after=$(stat -c %s "$SHMQ_LOOP_JOURNAL")
  kill -CONT "$wl"
  echo "$k $before $after" >>"$work/copies"
done
touch "$SHMQ_LOOP_STOP"
wait "$wl" || { cat "$work/workload.log"; exit 1; }
tail -n 1 "$work/workload.log"

fail=0
while read -r k before after; do
  cdev=$(losetup -f --show "$work/copy-$k.img")
  mount "$cdev" "$work/check"
  if out=$(SHMQ_LOOP_QUEUE="$work/check/q" SHMQ_LOOP_BEFORE="$before" SHMQ_LOOP_AFTER="$after" \
      "$bin" loop_check --ignored --exact --nocapture 2>&1); then
    echo "copy $k: $(printf '%s\n' "$out" | grep -o 'LOOPCHECK.*')"
  else
    echo "copy $k: FAILED: $(printf '%s\n' "$out" | grep -o 'LOOPCHECK.*')"
    printf '%s\n' "$out" | grep -A1 'panicked' | head -n 4; fail=1
  fi
  umount "$work/check"; losetup -d "$cdev"; cdev=
  rm -f "$work/copy-$k.img"
done <"$work/copies"
exit $fail
