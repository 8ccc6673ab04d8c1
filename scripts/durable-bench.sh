#!/usr/bin/env bash
# Durable sends (issue 13), in one run: first the cost of a sync after a
# record lands in fallocated against written-through blocks (by pwrite and
# through a mapping); then shmq's durable queue against a raw pwrite +
# fdatasync group commit (the limit), SQLite (WAL, synchronous=FULL, a
# table queue) and Redis (appendfsync always), with 1, 4 and 16 producers
# as threads and as processes, plus shmq-refaulted (the same queue with its
# page cache dropped after creation: 4 KiB folios, the control for how much
# each sync writes back). The harness is
# `peers durable` and `peers prealloc` (bench-peers/src/durable.rs).
#
# Appends a section with the figures and ratios to benches/results/durable.md
# (or OUT.md); the raw output stays in target/durable-bench/.
#
# Usage: scripts/durable-bench.sh [OUT.md]
# Environment:
#   DURABLE_DIR=DIR       where every peer's files go (default /var/tmp); a
#                         disk file system, tmpfs is refused
#   DURABLE_SECS=S        measured window of each row (default 2)
#   DURABLE_ROUNDS=R      each row runs once per round (default 3); the
#                         figures merge the rounds
#   DURABLE_PRODUCERS     default "1 4 16"
#   DURABLE_PEERS         default "fdatasync-raw shmq shmq-refaulted sqlite redis"
#   PREALLOC_SAMPLES=N    default 1000
#   DURABLE_REPORT_ONLY=1 measure nothing: append the report of the last run's
#                         results (target/durable-bench) again
# Installs redis-server from Debian when it is missing (as root), starts it
# on 127.0.0.1 and a free port with its append-only file in DURABLE_DIR, and
# stops it at the end. About 4 minutes on a 2-core machine, builds excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_MD=${1:-benches/results/durable.md}
DIR=${DURABLE_DIR:-/var/tmp}
ROUNDS=${DURABLE_ROUNDS:-3}
PRODUCERS=${DURABLE_PRODUCERS:-1 4 16}
PEER_LIST=${DURABLE_PEERS:-fdatasync-raw shmq shmq-refaulted sqlite redis}
RES=$ROOT/target/durable-bench
export DURABLE_DIR=$DIR DURABLE_SECS=${DURABLE_SECS:-2}
export CARGO_TERM_COLOR=never

log() { printf '== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }

FSTYPE=$(stat -f -c %T "$DIR")
if [ "$FSTYPE" = tmpfs ]; then
  echo "$DIR is tmpfs: set DURABLE_DIR to a directory on a disk file system" >&2
  exit 1
fi
MOUNT=$(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$DIR" 2>/dev/null || echo unknown)

if [ -z "${DURABLE_REPORT_ONLY:-}" ]; then
rm -rf "$RES"
mkdir -p "$RES"

log "build bench-peers"
cargo build --release --manifest-path bench-peers/Cargo.toml --bin peers >"$RES/build.log" 2>&1 ||
  { tail -50 "$RES/build.log"; exit 1; }
PEERS=${CARGO_TARGET_DIR:-$ROOT/bench-peers/target}/release/peers
git rev-parse --short HEAD >"$RES/commit"

# ---------------------------------------------------------------- redis
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "install redis-server (Debian)"
    { apt-get update -qq && apt-get install -y -qq redis-server; } >>"$RES/build.log" 2>&1 || true
  fi
fi
REDIS_PID=
REDIS_DIR=
stop_redis() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  REDIS_PID=
  if [ -n "$REDIS_DIR" ]; then rm -rf "$REDIS_DIR"; fi
  REDIS_DIR=
}
trap stop_redis EXIT
if command -v redis-server >/dev/null; then
  REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REDIS_DIR=$(mktemp -d "$DIR/shmq-durable-redis.XXXXXX")
  # appendfsync always: a write is answered after its fsync. No snapshots,
  # no rewrites of the append-only file during the run (they would fork
  # and write in the middle of a row).
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
    --save '' --appendonly yes --appendfsync always --auto-aof-rewrite-percentage 0 \
    --dir "$REDIS_DIR" --logfile "$RES/redis.log" &
  REDIS_PID=$!
  export REDIS_PORT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
    sleep 0.1
  done
  redis-server --version | awk '{print $3}' | cut -d= -f2 >"$RES/redis_version"
  if command -v redis-cli >/dev/null; then
    redis-cli -p "$REDIS_PORT" config get appendfsync | tr '\n' ' ' >"$RES/redis_config"
    redis-cli -p "$REDIS_PORT" config get appendonly | tr '\n' ' ' >>"$RES/redis_config"
  fi
else
  echo "redis-server not available: the redis rows are skipped" >&2
  PEER_LIST=$(echo "$PEER_LIST" | sed 's/\bredis\b//')
fi

# ---------------------------------------------------------------- rows
cat /proc/loadavg >"$RES/load_before"
: >"$RES/durable.txt"
log "prealloc: fallocated against written-through"
cat /proc/loadavg >>"$RES/load_trace"
timeout 120 "$PEERS" prealloc "${PREALLOC_SAMPLES:-1000}" >>"$RES/durable.txt" 2>>"$RES/durable.err" ||
  echo "FAILED prealloc (exit $?)" >>"$RES/durable.txt"
for round in $(seq "$ROUNDS"); do
  for n in $PRODUCERS; do
    for mode in threads processes; do
      log "round $round: $n producers, $mode"
      cat /proc/loadavg >>"$RES/load_trace"
      for peer in $PEER_LIST; do
        timeout 120 "$PEERS" durable "$peer" "$n" "$mode" >>"$RES/durable.txt" 2>>"$RES/durable.err" ||
          echo "FAILED $peer $n $mode (exit $?)" >>"$RES/durable.txt"
      done
    done
  done
done
stop_redis
cat /proc/loadavg >"$RES/load_after"
date -u '+%Y-%m-%d %H:%M UTC' >"$RES/date"
echo "DURABLE_SECS=$DURABLE_SECS ROUNDS=$ROUNDS" >"$RES/settings"
grep -v '^RESULT' "$RES/durable.txt" >&2 || true

fi

# ---------------------------------------------------------------- report
log "append to $OUT_MD"
export RES FSTYPE MOUNT DIR ROUNDS
python3 - >>"$OUT_MD" <<'PY'
import json, math, os, subprocess
RES = os.environ["RES"]
rd = lambda f, d="": open(os.path.join(RES, f)).read().strip() if os.path.exists(os.path.join(RES, f)) else d
rows, pre, failed, shsync = {}, {}, [], {}
for line in open(os.path.join(RES, "durable.txt")):
    if line.startswith("FAILED"):
        failed.append(line.strip())
    if not line.startswith("RESULT "):
        continue
    r = json.loads(line[7:])
    if r["kind"] == "prealloc":
        pre[r["variant"]] = r
        continue
    if r["kind"] == "shmq_syncs":
        shsync.setdefault((r["peer"], r["producers"], r["mode"]), []).append(r)
        continue
    k = (r["peer"], r["producers"], r["mode"])
    rows.setdefault(k, []).append(r)

def merge(hs):
    m = {}
    for h in hs:
        for v, c in h:
            m[v] = m.get(v, 0) + c
    return sorted(m.items())

def quantile(h, q):
    total = sum(c for _, c in h)
    if total == 0:
        return None
    want, seen = min(total, max(1, math.ceil(q * total))), 0
    for v, c in h:
        seen += c
        if seen >= want:
            return v
    return h[-1][0]

def agg(k):
    rs = rows.get(k)
    if not rs:
        return None
    sends = sum(r["sends"] for r in rs)
    secs = sum(r["secs"] for r in rs)
    h = merge(r["hist"] for r in rs)
    a = {"rate": sends / secs, "rates": [r["per_s"] for r in rs], "p50": quantile(h, 0.5),
         "p99": quantile(h, 0.99), "max": max(r["max"] for r in rs), "sends": sends}
    if "sync_hist" in rs[0]:
        sh = merge(r["sync_hist"] for r in rs)
        syncs = sum(r["syncs"] for r in rs)
        a.update(syncs=syncs, per_sync=sends / max(1, syncs), sync_p50=quantile(sh, 0.5),
                 sync_p99=quantile(sh, 0.99))
    if "version" in rs[0]:
        a["version"] = rs[0]["version"]
    if all("device_kib" in r for r in rs):
        a["dev_kib_per_send"] = sum(r["device_kib"] for r in rs) / max(1, sends)
    if shsync.get(k):
        ss = shsync[k]
        a["per_sync"] = sum(r["waits_per_sync"] * r["syncs"] for r in ss) / max(1, sum(r["syncs"] for r in ss))
    return a

def t(ns):
    if ns is None:
        return "-"
    if ns < 1e3: return f"{ns:.0f} ns"
    if ns < 1e6: return f"{ns/1e3:.1f} µs"
    return f"{ns/1e6:.2f} ms"

def rate(x):
    if x is None: return "-"
    if x >= 1e6: return f"{x/1e6:.2f} M/s"
    if x >= 1e3: return f"{x/1e3:.1f} k/s"
    return f"{x:.0f}/s"

def ratio(a, b):
    return f"{a/b:.2f}x" if a is not None and b else "-"

NAMES = {"fdatasync-raw": "pwrite + fdatasync, group commit by hand (the limit)",
         "shmq": "shmq, `durable(true)`",
         "shmq-refaulted": "shmq, page cache dropped after creation (4 KiB folios whatever creation left: the control)",
         "sqlite": "SQLite table queue, WAL, synchronous=FULL",
         "redis": "Redis LPUSH, appendfsync always"}
peers = [p for p in ["fdatasync-raw", "shmq", "shmq-refaulted", "sqlite", "redis"] if any(k[0] == p for k in rows)]
prods = sorted({k[1] for k in rows})
out = []
p = out.append
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
date = rd("date") or sh("date -u '+%Y-%m-%d %H:%M UTC'")
settings = dict(w.split("=", 1) for w in rd("settings").split())
SECS = settings.get("DURABLE_SECS", os.environ.get("DURABLE_SECS"))
ROUNDS = settings.get("ROUNDS", os.environ["ROUNDS"])
p("")
p(f"### Run of {date}, shmq at commit {rd('commit')}")
p("")
sqlite_v = next((agg(k)["version"] for k in rows if k[0] == "sqlite"), "-")
p(f"- `scripts/durable-bench.sh` (DURABLE_SECS={SECS}, "
  f"{ROUNDS} round(s) merged: rate = all sends / all windows, latency percentiles "
  f"of the merged histograms, rounds' min-max in brackets)")
p(f"- files in {os.environ['DIR']}: `stat -f -c %T` {os.environ['FSTYPE']}; mount: {os.environ['MOUNT']}")
p(f"- {sh('nproc')} CPUs, kernel {sh('uname -r')}; redis-server {rd('redis_version', '-')} "
  f"({rd('redis_config', 'config not read')}), SQLite {sqlite_v} (bundled by rusqlite)")
trace = [float(l.split()[0]) for l in rd('load_trace').splitlines() if l.strip()]
p(f"- load average before: {' '.join(rd('load_before').split()[:3])}, after: {' '.join(rd('load_after').split()[:3])}"
  + (f"; 1-minute load at each step: {min(trace):.2f} to {max(trace):.2f}" if trace else ""))
for f in failed:
    p(f"- **{f}**")
p("")
p("| peer | producers | mode | sends/s | p50 | p99 | max | sends per fdatasync | device KiB written per send | shmq / peer (sends/s) |")
p("|---|---|---|---|---|---|---|---|---|---|")
for n in prods:
    for mode in ["threads", "processes"]:
        s = agg(("shmq", n, mode))
        for peer in peers:
            a = agg((peer, n, mode))
            if a is None:
                continue
            rr = "-" if peer.startswith("shmq") or s is None else ratio(s["rate"], a["rate"])
            lo, hi = min(a["rates"]), max(a["rates"])
            ps = f"{a['per_sync']:.1f}" if "per_sync" in a else "-"
            dk = f"{a['dev_kib_per_send']:.1f}" if "dev_kib_per_send" in a else "-"
            p(f"| {NAMES[peer]} | {n} | {mode} | {rate(a['rate'])} ({rate(lo)}-{rate(hi)}) | "
              f"{t(a['p50'])} | {t(a['p99'])} | {t(a['max'])} | {ps} | {dk} | {rr} |")
p("")
raw1 = agg(("fdatasync-raw", 1, "threads"))
shmq1 = agg(("shmq", 1, "threads"))
p("Targets (issue 13):")
p("")
p("| target | figure | result |")
p("|---|---|---|")
def verdict(ok):
    return "-" if ok is None else ("**met**" if ok else "**missed**")
fix1 = agg(("shmq-refaulted", 1, "threads"))
def whatif(a, b, f):
    return "" if a is None or b is None else f"; 4 KiB folios (shmq-refaulted): {f(a, b)}"
if raw1 and shmq1:
    r_sync = shmq1["p50"] / raw1["sync_p50"]
    r_write = shmq1["p50"] / raw1["p50"]
    p(f"| 1 producer: durable send p50 <= 1.3x one fdatasync | shmq {t(shmq1['p50'])}; "
      f"fdatasync alone {t(raw1['sync_p50'])}: {r_sync:.2f}x; pwrite 64 B + fdatasync "
      f"{t(raw1['p50'])}: {r_write:.2f}x"
      + whatif(fix1, raw1, lambda a, b: f"{t(a['p50'])}, {a['p50']/b['sync_p50']:.2f}x")
      + f" | {verdict(r_sync <= 1.3)} |")
for mode in ["threads", "processes"]:
    s, r, q, f = (agg((x, 16, mode)) for x in ["shmq", "fdatasync-raw", "sqlite", "shmq-refaulted"])
    if s and r:
        p(f"| 16 producers ({mode}) >= 0.5x the raw batched limit | shmq {rate(s['rate'])}, raw "
          f"{rate(r['rate'])}: {s['rate']/r['rate']:.2f}x"
          + whatif(f, r, lambda a, b: f"{rate(a['rate'])}, {a['rate']/b['rate']:.2f}x")
          + f" | {verdict(s['rate'] >= 0.5 * r['rate'])} |")
    if s and q:
        p(f"| 16 producers ({mode}) >= 10x SQLite | shmq {rate(s['rate'])}, SQLite "
          f"{rate(q['rate'])}: {s['rate']/q['rate']:.1f}x"
          + whatif(f, q, lambda a, b: f"{rate(a['rate'])}, {a['rate']/b['rate']:.1f}x")
          + f" | {verdict(s['rate'] >= 10 * q['rate'])} |")
p("")
raws = [(k, agg(k)) for k in sorted(rows) if k[0] == "fdatasync-raw"]
if raws:
    p("The raw limit's fdatasync calls alone:")
    p("")
    p("| producers | mode | fdatasync calls/s | sends per fdatasync | fdatasync p50 | fdatasync p99 |")
    p("|---|---|---|---|---|---|")
    secs = float(SECS) * int(ROUNDS)
    for (peer, n, mode), a in sorted(raws, key=lambda x: (x[0][1], x[0][2] != "threads")):
        p(f"| {n} | {mode} | {a['syncs']/secs:.0f} | {a['per_sync']:.1f} | {t(a['sync_p50'])} | {t(a['sync_p99'])} |")
    p("")
if pre:
    p("Creation: a 64 B record into a block never written since the file was prepared, then "
      "fdatasync (`peers prealloc`; the variants take turns sample by sample; device KiB: what the "
      "whole device wrote per sync, other writers included):")
    p("")
    p("| file prepared by | record written by | preparation | p50 | p99 | max | device KiB per sync | samples |")
    p("|---|---|---|---|---|---|---|---|")
    prep_desc = {"fallocated": "posix_fallocate + fsync (unwritten extents)",
                 "written-1m": "zeros by 1 MiB pwrites + fsync (as shmq before main 84570c8)",
                 "written-4k": "zeros by 4 KiB pwrites + fsync (as shmq)",
                 "grown": "nothing: each record appended"}
    how = {"pwrite": "pwrite", "mmap": "store through a shared mapping (as shmq)"}
    for v, r in pre.items():
        f, w = v.rsplit("-", 1)
        prep = f"{r['prep_ms']:.1f} ms for {r['bytes'] / 2**20:.1f} MiB" if r["prep_ms"] is not None else "-"
        dk = "-" if r.get("device_kib_per_sync") is None else f"{r['device_kib_per_sync']:.1f}"
        p(f"| {prep_desc.get(f, f)} | {how.get(w, w)} | {prep} | {t(r['p50'])} | {t(r['p99'])} | "
          f"{t(r['max'])} | {dk} | {r['n']} |")
    pairs = [("fallocated-pwrite", "written-1m-pwrite"), ("fallocated-mmap", "written-4k-mmap"),
             ("written-1m-mmap", "written-4k-mmap")]
    said = [f"{x} / {y}: p50 {pre[x]['p50']/pre[y]['p50']:.2f}x, p99 {pre[x]['p99']/pre[y]['p99']:.2f}x"
            for x, y in pairs if x in pre and y in pre]
    if said:
        p("")
        p("; ".join(said) + ".")
print("\n".join(out))
PY
log "done: $OUT_MD"
