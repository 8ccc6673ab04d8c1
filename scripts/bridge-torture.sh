#!/usr/bin/env bash
# The bridge's kill -9 test, long form: SIGKILL the out- and in-bridges at
# random while messages flow from queue A through NATS JetStream to queue B,
# restart nats-server once in the middle, then check that every message sent
# Ok on A arrived on B (lost 0) and print the duplicates.
#
#   scripts/bridge-torture.sh            # 2,000 kills
#   KILLS=10000 scripts/bridge-torture.sh
#   SEED=123 scripts/bridge-torture.sh   # replay one kill schedule
#
# Needs nats-server (apt-get install -y nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || {
  echo "nats-server not found: apt-get install -y nats-server" >&2
  exit 1
}
export SHMQ_BRIDGE_KILLS="${KILLS:-2000}"
if [ -n "${SEED:-}" ]; then export SHMQ_BRIDGE_SEED="$SEED"; fi
exec cargo test -p shmq-bridge --release --test torture -- --nocapture
