#!/usr/bin/env bash
# Every loom model must be able to fail (docs/design.md §10). For each row of
# the table below this builds the core with one `--cfg shmq_mutation="NAME"`
# and runs the one model the mutant must fail. It prints a table and exits
# non-zero if a model passes against its mutant (the mutant survived), if a
# model fails without any mutant, or if a build breaks.
#
# Slow: every mutant is a fresh build of the core and of loom (about a minute
# each on 2 cores), so this is not part of .ci/run. Run it after changing a
# model or the code a mutation point sits in:
#
#     loom-tests/run-mutations.sh                   # every row
#     loom-tests/run-mutations.sh commit_store ...  # only these mutations
#
# Logs: $CARGO_TARGET_DIR/mutation-logs/ (default target/loom-mut).
set -euo pipefail
cd "$(dirname "$0")/.."

# model                            file   mutation (a cfg point in src/ring/ or src/registry.rs)
TABLE="
two_producers_race_for_one_slot    send   check_then_store
wrap_around_two_slots              send   send_no_step_over
full_queue_keeps_order             send   full_burns_ticket
a_receiver_polling_the_published_head_misses_no_send  send  head_after_fill
stalled_claimer_against_reuse      send   claim_no_owner
stalled_claimer_against_reuse      send   aux_no_recheck
late_ack_against_takeover          lease  no_gen_fence
extend_against_takeover            lease  extend_no_cas
ack_against_slot_reuse             lease  no_gen_fence
stale_receipt_after_generation_wrap lease receipt_no_id
reboot_reset_against_ack           lease  reset_store
dead_letter_against_ack            dead   check_then_store
reject_against_takeover            dead   check_then_store
redrive_against_receive            dead   transition_relaxed
redrive_against_receive            dead   redrive_aux_after
batch_send_against_batch_receive   batch  batch_rewind_last
batch_send_against_batch_receive   batch  batch_skip_one_more
full_hint_against_ack              batch  full_hint_no_second_look
room_wait_against_ack              batch  room_no_wake
batch_send_against_batch_receive   batch  no_skip_mark
two_registrations_race_for_one_entry       registry  claim_check_then_store
freeing_a_dead_entry_against_its_reuse     registry  free_store
a_registration_in_progress_is_not_judged   registry  no_tag_check
reboot_reset_against_a_new_registration    registry  reset_any_boot
durable_senders_wait_for_a_sync_that_saw_them  durable  sync_target_running
durable_senders_wait_for_a_sync_that_saw_them  durable  sync_epoch_after
a_failed_sync_fails_every_durable_sender       durable  sync_error_retry
"

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TERM_COLOR=never
target="${CARGO_TARGET_DIR:-target/loom-mut}"
logs="$target/mutation-logs"
mkdir -p "$logs"
# Seconds one mutant may take (build and model). A model that runs longer
# against its mutant counts as a survivor.
limit="${MUTATION_TIMEOUT_S:-900}"

wanted() {
  [ $# -eq 1 ] && return 0
  local m=$1
  shift
  local w
  for w in "$@"; do [ "$w" = "$m" ] && return 0; done
  return 1
}

# The first panic message in a log on one line (with assert_eq's left and
# right), or "-".
panic_line() {
  awk '
    grab && (/^stack backtrace/ || /^note:/ || /^$/) { exit }
    grab { sub(/^ +/, ""); line = line (line == "" ? "" : " ") $0 }
    /panicked at/ { grab = 1 }
    END { print (line == "" ? "-" : line) }
  ' "$1" | cut -c1-160
}

# Baseline: the models must pass on the unmutated core, or a failing model
# would "kill" every mutant.
echo "baseline: the models on the unmutated core (target/loom)"
if ! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p shmq-loom-tests --release >"$logs/baseline.log" 2>&1; then
  echo "the models fail without a mutation: see $logs/baseline.log" >&2
  exit 1
fi

rows=()
bad=0
while read -r model file mutation; do
  [ -n "${model:-}" ] || continue
  wanted "$mutation" "$@" || continue
  log="$logs/$mutation--$model.log"
  start=$SECONDS
  rc=0
  RUSTFLAGS="--cfg loom --cfg shmq_mutation=\"$mutation\"" CARGO_TARGET_DIR="$target" \
    timeout "$limit" cargo test -p shmq-loom-tests --release \
    --test "$file" "$model" -- --exact </dev/null >"$log" 2>&1 || rc=$?
  secs=$((SECONDS - start))
  if grep -q "^test $model \.\.\. FAILED" "$log"; then
    verdict=killed
    why=$(panic_line "$log")
  elif grep -q "^test $model \.\.\. ok" "$log"; then
    verdict=SURVIVED
    why="the model passed against the mutant"
    bad=1
  elif [ "$rc" -eq 124 ]; then
    verdict=TIMEOUT
    why="no verdict within ${limit}s"
    bad=1
  else
    verdict=ERROR
    why="no test result (build failed?): see $log"
    bad=1
  fi
  printf '  %-32s %-22s %-8s %4ss\n' "$model" "$mutation" "$verdict" "$secs"
  rows+=("$(printf '%-32s %-6s %-22s %-8s %4ss  %s' "$model" "$file" "$mutation" "$verdict" "$secs" "$why")")
done <<<"$TABLE"

if [ ${#rows[@]} -eq 0 ]; then
  echo "no row matches: $*" >&2
  exit 2
fi
echo
printf '%-32s %-6s %-22s %-8s %5s  %s\n' model file mutation verdict time "observed failure"
printf '%s\n' "${rows[@]}"
if [ "$bad" -ne 0 ]; then
  echo "some mutant survived or did not run (logs in $logs)" >&2
  exit 1
fi
echo "every mutant was killed"
