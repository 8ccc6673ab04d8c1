#!/usr/bin/env bash
# Measure the bridge against plain JetStream: starts a nats-server with
# JetStream on a free loopback port (store in a temp dir), then runs
# `shmq-bridge bench` three times: at full speed (throughput), at a fixed
# offered load (latency), and each bridge alone. Extra arguments go to
# every run.
#
#   scripts/bridge-bench.sh
#   MESSAGES=200000 RATE=5000 ROUNDS=3 scripts/bridge-bench.sh --size 512
#
# Needs nats-server (apt-get install -y nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || {
  echo "nats-server not found: apt-get install -y nats-server" >&2
  exit 1
}
cargo build -p shmq-bridge --release
bin="${CARGO_TARGET_DIR:-target}/release/shmq-bridge"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
nats-server -js -sd "$dir/store" -a 127.0.0.1 -p "$port" >"$dir/nats.log" 2>&1 &
nats_pid=$!
trap 'kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "nats-server $(nats-server --version | awk '{print $2}') on 127.0.0.1:$port, store in $dir"
echo "== throughput (as fast as possible)"
"$bin" bench --server "nats://127.0.0.1:$port" --messages "${MESSAGES:-50000}" --rounds "${ROUNDS:-5}" --dir "$dir" "$@"
echo "== latency (offered load ${RATE:-2000} msg/s)"
"$bin" bench --server "nats://127.0.0.1:$port" --messages "${LAT_MESSAGES:-10000}" --rate "${RATE:-2000}" --rounds "${ROUNDS:-5}" --dir "$dir" "$@"
echo "== each bridge alone"
"$bin" bench --server "nats://127.0.0.1:$port" --messages "${MESSAGES:-50000}" --only halves --dir "$dir" "$@"
