#!/usr/bin/env bash
# Paired A/B of two builds of the peers harness (bench-peers), alternating
# runs so that both see the same machine state, for a change that must not
# cost throughput or latency:
#
#   scripts/bench-ab.sh REV_A REV_B [PAIRS]
#
# builds `peers` at each revision (in temporary worktrees, sharing
# bench-peers/target so only shmq and the harness recompile), then runs
# PAIRS (default 8) pairs of
#   peers throughput shmq 64 1     (1P/1C, lease + ack per message)
#   peers pingpong shmq 200000     (one-way latency)
# A first, then B, and prints each run and the medians. Run it on a quiet
# machine: a loaded 2-core VM gives figures 10x lower and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
A=${1:?REV_A}
B=${2:?REV_B}
PAIRS=${3:-8}
OUT=$ROOT/target/bench-ab
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$ROOT/bench-peers/target

build() {
  local rev=$1 wt
  wt=$(mktemp -d)
  git worktree add -q --detach "$wt" "$rev"
  (cd "$wt" && cargo build -q --release --manifest-path bench-peers/Cargo.toml --bin peers)
  cp "$CARGO_TARGET_DIR/release/peers" "$OUT/peers-$rev"
  git worktree remove --force "$wt"
}
build "$A"
build "$B"

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | tail -1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: >"$OUT/tp-$A" ; : >"$OUT/tp-$B" ; : >"$OUT/pp-$A" ; : >"$OUT/pp-$B"
for i in $(seq "$PAIRS"); do
  for rev in "$A" "$B"; do
    tp=$("$OUT/peers-$rev" throughput shmq 64 1 2>/dev/null | grep '^RESULT' | field msgs_per_s)
    pp=$("$OUT/peers-$rev" pingpong shmq 200000 2>/dev/null | grep '^RESULT' | field p50)
    echo "$tp" >>"$OUT/tp-$rev"
    echo "$pp" >>"$OUT/pp-$rev"
    printf 'pair %2d  %-12s  1P/1C %10s msg/s   ping-pong p50 %6s ns\n' "$i" "$rev" "$tp" "$pp"
  done
done
for rev in "$A" "$B"; do
  printf 'median  %-12s  1P/1C %10s msg/s   ping-pong p50 %6s ns\n' "$rev" \
    "$(median <"$OUT/tp-$rev")" "$(median <"$OUT/pp-$rev")"
done
