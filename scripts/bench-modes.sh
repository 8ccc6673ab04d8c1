#!/usr/bin/env bash
# The published head and the next-slot prefetch (docs/design.md §5.1, §5.2)
# against the receive path before them, measured inside one run:
#
#   scripts/bench-modes.sh [RUNS]        (default 8)
#
# This VM's two vCPUs change placement every few seconds, which moves a
# ping-pong p50 between about 300 and 900 ns, so separate runs of two
# builds are hard to pair. Instead, scripts/bench-modes.patch adds to a
# throwaway worktree of HEAD a knob, `shmq::EXP_MODE` (0: neither the head
# nor the next-slot prefetch, receivers poll `fill`; 1: the head alone,
# with the receiver's payload prefetch; 2: both, as main), and a harness
# (bench-peers/src/bin/modes.rs) that switches it in blocks inside one
# run, both processes at the same block: 1,000 round
# trips per ping-pong block, 20,000 messages per throughput block. Each
# block is compared with the block of mode 0 just before it. A placement
# probe (`peers probe`) runs before each run. The knob never lands on main.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-8}
OUT=$ROOT/target/bench-modes
mkdir -p "$OUT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$OUT/target}
wt=$(mktemp -d)
trap 'git -C "$ROOT" worktree remove --force "$wt" 2>/dev/null || true' EXIT
git worktree add -q --detach "$wt" HEAD
(cd "$wt" && git apply "$ROOT/scripts/bench-modes.patch")
cargo build -q --release --manifest-path "$wt/bench-peers/Cargo.toml" --bin modes --bin peers
BIN=$CARGO_TARGET_DIR/release
log=$OUT/log-$(date -u +%Y%m%dT%H%M%S)
for i in $(seq "$RUNS"); do
  "$BIN/peers" probe 2>/dev/null | grep '^RESULT' | sed "s/^/run $i /"
  "$BIN/modes" pp 0,1,2 1000 300 | sed "s/^/run $i /"
  "$BIN/modes" tp 0,1,2 20000 150 | sed "s/^/run $i /"
done | tee "$log"
echo "log: $log"
