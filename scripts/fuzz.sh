#!/usr/bin/env bash
# libFuzzer over open + recover + receive with arbitrary file bytes
# (fuzz/fuzz_targets/open_recover_receive.rs), under AddressSanitizer.
#
#   scripts/fuzz.sh [SECONDS]        (default 600)
#
# Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Findings land in fuzz/artifacts/; the corpus in fuzz/corpus/ (both ignored
# by git). The last lines of the log give executions and coverage.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
cargo +nightly fuzz run open_recover_receive -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
