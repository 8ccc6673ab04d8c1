#!/usr/bin/env bash
# The power-cut simulator (tests/powercut.rs, docs/design.md §12.5), long
# form and mutants.
#
#   scripts/powercut.sh long [IMAGES]   # 100,000 images by default, release build
#   scripts/powercut.sh mutants [NAME ...]
#
# `mutants` builds the library with one `--cfg shmq_mutation="NAME"` at a
# time and runs the simulator against it: each mutant must make the count
# its row names non-zero (the property fails), and the unmutated build must
# pass. It prints a table and exits non-zero if a mutant survives.
# Logs: $CARGO_TARGET_DIR/powercut-logs (default target/powercut).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# mutation              count it must make non-zero   what it breaks
TABLE="
durable_no_wait         lost            a durable send returns before its sync
sync_epoch_after        lost            the syncer takes its epoch after the sync
sync_target_running     lost            a sender counts the sync already running
receive_no_crc          corrupt         receive checks no checksum
reboot_no_reset         stuck           open resets no clock after a reboot
recover_budget          recover_twice   a recover pass repairs at most 4 slots
"

target="${CARGO_TARGET_DIR:-target/powercut}"
logs="$target/powercut-logs"
mkdir -p "$logs"

run_sim() { # images, rustflags, log
  local images=$1 flags=$2 log=$3
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target/build${flags:+-mut}" SHMQ_POWERCUT_IMAGES="$images" \
    cargo test --release --features failpoints --test powercut power_cuts -- --nocapture >"$log" 2>&1 </dev/null
}

counts_of() { grep -o "Counts {[^}]*}" "$1" | tail -n 1 || true; }

case "${1:-}" in
  long)
    images="${2:-100000}"
    echo "power cuts: $images images (release build; log $logs/long.log)"
    start=$(date +%s)
    if run_sim "$images" "" "$logs/long.log"; then
      echo "ok in $(( $(date +%s) - start )) s: $(counts_of "$logs/long.log")"
      grep -o 'SHMQ_SEED=[0-9]*' "$logs/long.log" | head -n 1
    else
      echo "FAILED: $(counts_of "$logs/long.log")"; tail -n 30 "$logs/long.log"; exit 1
    fi
    ;;
  mutants)
    shift
    images="${SHMQ_POWERCUT_IMAGES:-3000}"
    survivors=0
    printf '%-22s %-14s %s\n' mutation count result
    while read -r name count what; do
      [ -z "$name" ] && continue
      if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
      log="$logs/$name.log"
      if run_sim "$images" "--cfg shmq_mutation=\"$name\"" "$log"; then
        result="SURVIVED (the simulator passed)"; survivors=$((survivors + 1))
      else
        c=$(counts_of "$log")
        n=$(printf '%s' "$c" | grep -o "$count: [0-9]*" | grep -o '[0-9]*$' || true)
        if [ -n "$n" ] && [ "$n" -gt 0 ]; then
          result="killed: $count $n"
        else
          result="FAILED OTHERWISE (see $log)"; survivors=$((survivors + 1))
        fi
      fi
      printf '%-22s %-14s %s\n' "$name" "$count" "$result"
    done <<<"$TABLE"
    if run_sim "$images" "" "$logs/clean.log"; then
      printf '%-22s %-14s %s\n' "(none)" "-" "passed: $(counts_of "$logs/clean.log")"
    else
      printf '%-22s %-14s %s\n' "(none)" "-" "FAILED: see $logs/clean.log"; survivors=$((survivors + 1))
    fi
    exit $((survivors > 0))
    ;;
  *)
    sed -n '2,13p' "$0"; exit 2 ;;
esac
