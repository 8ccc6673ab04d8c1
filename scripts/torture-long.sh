#!/usr/bin/env bash
# The long forms of the crash torture (issue 3; figures in RELIABILITY.md).
#
#   scripts/torture-long.sh [soak] [zombie] [damage] [hostile] [asan]
#
# With no argument, runs them all, in that order (about 25 minutes on 2
# cores). Each prints its report and writes it to $OUT (default
# target/torture-reports/). Knobs (environment):
#
#   SHMQ_TORTURE_KILLS   kill -9 soak: scheduled SIGKILLs          (10000)
#   SHMQ_TORTURE_VT_MS   kill -9 soak: visibility timeout, ms        (200)
#   SHMQ_TORTURE_REBOOT_EVERY  kill -9 soak: kills between simulated
#                        reboots, on average; 0: none                 (100)
#   SHMQ_TORTURE_DURABLE kill -9 soak: 1 makes the queue durable, on a
#                        disk file under target/, syncer among victims  (0)
#   SHMQ_ZOMBIE_TRIALS   hole and zombie: stopped senders           (1000)
#   SHMQ_FUZZ_CASES      random file damage: cases                (200000)
#   SHMQ_HOSTILE_SECS    hostile peer: seconds                       (300)
#   SHMQ_ASAN_SECS       hostile peer under AddressSanitizer: secs    (60)
#   SHMQ_ASAN_CASES      random file damage under AddressSanitizer  (20000)
#   SHMQ_SEED            replay one run's random choices
#
# `asan` needs a nightly toolchain (rustup toolchain install nightly); it
# builds into target/asan and runs the byte flips, the random damage and the
# hostile peer with -Zsanitizer=address. The libFuzzer target is separate:
# scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/torture-reports}
mkdir -p "$OUT"
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(soak zombie damage hostile asan)

step() { printf '\n== %s (%s)\n' "$1" "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"; }

for w in "${what[@]}"; do
  case "$w" in
    soak)
      step "kill -9 soak, ${SHMQ_TORTURE_KILLS:-10000} kills"
      SHMQ_TORTURE_REPORT="$OUT/soak.txt" \
        cargo test --release --test torture soak_long -- --ignored --nocapture
      ;;
    zombie)
      step "hole and zombie, ${SHMQ_ZOMBIE_TRIALS:-1000} trials"
      SHMQ_ZOMBIE_REPORT="$OUT/zombie.txt" \
        cargo test --release --features failpoints --test failpoints zombies_long \
        -- --ignored --nocapture
      ;;
    damage)
      step "random file damage, ${SHMQ_FUZZ_CASES:-200000} cases"
      cargo test --release --test corrupt random_damage_long -- --ignored --nocapture \
        2>&1 | tee "$OUT/damage.txt"
      ;;
    hostile)
      step "hostile peer, ${SHMQ_HOSTILE_SECS:-300} s"
      SHMQ_HOSTILE_REPORT="$OUT/hostile.txt" \
        cargo test --release --test hostile hostile_long -- --ignored --nocapture
      ;;
    asan)
      step "AddressSanitizer: byte flips, random damage, hostile peer ${SHMQ_ASAN_SECS:-60} s"
      # The standard library is not instrumented (no -Zbuild-std); shmq, the
      # tests and every other crate are. handle_sigbus=0: the truncation test
      # expects its child to die of SIGBUS, which ASan would report instead.
      export RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
      export CARGO_TARGET_DIR=target/asan ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:handle_sigbus=0"
      asan=(cargo +nightly test --target x86_64-unknown-linux-gnu -p shmq)
      {
        SHMQ_FUZZ_CASES=${SHMQ_ASAN_CASES:-20000} "${asan[@]}" --test corrupt \
          -- --include-ignored --nocapture
        SHMQ_HOSTILE_SECS=${SHMQ_ASAN_SECS:-60} "${asan[@]}" --test hostile \
          -- --include-ignored --nocapture
      } 2>&1 | tee "$OUT/asan.txt"
      ;;
    *)
      echo "unknown part: $w (soak, zombie, damage, hostile, asan)" >&2
      exit 2
      ;;
  esac
done
step "done; reports in $OUT"
