#!/usr/bin/env bash
# Paired measurement of shmq against the bare shared-mapping ring, rtrb,
# iceoryx2 and a bare futex (issue 15), placement by placement:
#
#   scripts/bench-paired.sh [PAIRS]          (default 100)
#
# This VM's two vCPUs move between placements every few seconds to minutes,
# and the placement changes a cache-line transfer between them from about
# 30 to about 480 ns and the bare ring's 64 B throughput between about 10
# and 90 M msg/s. So every shmq figure is taken right after the figure it
# is compared with, placement probes (`peers probe`,
# bench-peers/src/probe.rs) run before, between and after the runs, and a
# ratio counts for a placement only if every probe around its runs names
# it.
# Each round makes one pair of each kind:
#
#   tput      [base shmq], shm-ring 64 B, shmq 64 B lease+ack
#   batch     [base shmq batches of 64], rtrb 64 B chunks of 64,
#             shmq batches of 64, rtrb one at a time
#   pingpong  [base shmq], shm-ring, shmq, iceoryx2 (one-way p50)
#   wakeup    parked shmq consumer against a bare futex (the latency
#             bench's `wakeup`: alternating blocks in one run)
#
# with a probe before the first run and after each run, so that every shmq
# run comes right after the run it is compared with and each ratio is
# judged by the probes around its two runs only. Throughput runs are
# one run of about 0.15 s each after a sizing run (PEERS_RUNS=1
# PEERS_SECS=0.15); ping-pong runs PAIRED_SAMPLES round trips. Then
# callgrind instructions and locked instructions per message
# (scripts/callgrind-per-msg.sh) of this tree and of the base.
#
# [base]: a second build of shmq, PAIRED_BASE (default f944f59, the core
# that issue 15 calls "today": format 1, 1,548 instructions per message),
# built from a detached worktree with scripts/bench-paired-base.patch (the
# PEERS_RUNS/PEERS_SECS knobs and the sizing run of this tree) applied to
# its bench-peers; PAIRED_BASE= (empty) leaves it out.
#
# Writes target/bench-paired/log-DATE (every RESULT line, tagged with its
# round, kind and step; `log` links to the latest) and benches/results/paired.md (appended to BENCHMARKS.md by
# scripts/bench-compare.sh). A full run of 100 rounds takes about 10 minutes
# after the builds; the first build of the base takes a few minutes more.
#
# Environment:
#   PAIRED_BASE=REV        the base revision (default f944f59; empty: none)
#   PAIRED_SAMPLES=N       ping-pong round trips per run (default 200000)
#   PAIRED_WAIT_QUIET=S    wait up to S seconds (default 0) for the 1-minute
#                          load average to drop below 0.6 before measuring
#   PAIRED_NO_CALLGRIND=1  skip the callgrind counts
#   PAIRED_REPORT_ONLY=1   measure nothing: rewrite the report from the latest
#                          log, or from PAIRED_LOG=FILE
#   CARGO_TARGET_DIR       where this tree's bench-peers and benches build
#                          (default: bench-peers/target and target)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PAIRS=${1:-100}
BASE=${PAIRED_BASE-f944f59}
SAMPLES=${PAIRED_SAMPLES:-200000}
RES=$ROOT/target/bench-paired
LOG=${PAIRED_LOG:-$RES/log}
OUT_MD=$ROOT/benches/results/paired.md
export CARGO_TERM_COLOR=never

say() { printf '== %s (%s, load %s)\n' "$1" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1 /proc/loadavg)" >&2; }

if [ -z "${PAIRED_REPORT_ONLY:-}" ]; then
mkdir -p "$RES"
# Each run keeps its own log; `log` names the latest.
LOG=$RES/log-$(date -u +%Y%m%dT%H%M%S)
ln -sfn "$(basename "$LOG")" "$RES/log"

# ---------------------------------------------------------------- builds
say "build bench-peers and the latency bench (this tree)"
PEERS_TARGET=${CARGO_TARGET_DIR:-$ROOT/bench-peers/target}
cargo build -q --release --manifest-path bench-peers/Cargo.toml --bins >"$RES/build.log" 2>&1 ||
  { tail -30 "$RES/build.log"; exit 1; }
PEERS=$PEERS_TARGET/release/peers
PROFILE=$PEERS_TARGET/release/profile
LAT=$(cargo bench --bench latency --no-run 2>&1 | tee -a "$RES/build.log" |
  sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
case $LAT in /*) ;; *) LAT=$ROOT/$LAT ;; esac
[ -x "$LAT" ] || { echo "latency bench not built (see $RES/build.log)" >&2; exit 1; }

BPEERS= BPROFILE= BASE_SHORT=
if [ -n "$BASE" ]; then
  BASE_SHORT=$(git rev-parse --short "$BASE")
  BPEERS=$RES/peers-$BASE_SHORT
  BPROFILE=$RES/profile-$BASE_SHORT
  if [ ! -x "$BPEERS" ] || [ ! -x "$BPROFILE" ]; then
    say "build the base, $BASE_SHORT (a detached worktree; a few minutes the first time)"
    src=$RES/base-src
    git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
    git worktree add -q --detach "$src" "$BASE"
    # A base whose harness already has the knobs (2eff8fc and later) needs no patch.
    grep -q PEERS_SECS "$src/bench-peers/src/main.rs" ||
      (cd "$src" && git apply "$ROOT/scripts/bench-paired-base.patch")
    CARGO_TARGET_DIR=${PAIRED_BASE_TARGET:-$RES/base-target} \
      cargo build -q --release --manifest-path "$src/bench-peers/Cargo.toml" --bins >>"$RES/build.log" 2>&1 ||
      { tail -30 "$RES/build.log"; exit 1; }
    cp "${PAIRED_BASE_TARGET:-$RES/base-target}/release/peers" "$BPEERS"
    cp "${PAIRED_BASE_TARGET:-$RES/base-target}/release/profile" "$BPROFILE"
    git worktree remove --force "$src"
  fi
fi

# ---------------------------------------------------------------- quiet
WAIT=${PAIRED_WAIT_QUIET:-0}
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN{exit !(l >= 0.6)}' && [ "$waited" -lt "$WAIT" ]; do
  [ "$waited" = 0 ] && say "waiting for the 1-minute load average < 0.6 (up to ${WAIT}s)"
  sleep 10; waited=$((waited + 10))
done

# ---------------------------------------------------------------- pairs
{
  echo "META {\"commit\":\"$(git rev-parse --short HEAD)\",\"dirty\":$(git status --porcelain -- src Cargo.toml | wc -l),\"base\":\"$BASE_SHORT\",\"pairs\":$PAIRS,\"samples\":$SAMPLES,\"date\":\"$(date -u '+%Y-%m-%d %H:%M UTC')\",\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
} >"$LOG"

# step ROUND KIND STEP COMMAND...: run it, keep its RESULT lines, tagged,
# and its wall and CPU time (with its children's: GNU time, where
# /usr/bin/time exists) as a T line.
step() {
  local round=$1 kind=$2 name=$3
  shift 3
  local out
  local timed=()
  [ -x /usr/bin/time ] && timed=(/usr/bin/time -f '%e %U %S' -o "$RES/time.tmp")
  rm -f "$RES/time.tmp"
  if out=$("${timed[@]}" timeout 120 "$@" 2>>"$RES/err.log"); then
    printf '%s\n' "$out" | sed -n "s/^RESULT /R $round $kind $name /p" >>"$LOG"
    if [ -s "$RES/time.tmp" ]; then echo "T $round $kind $name $(tail -1 "$RES/time.tmp")" >>"$LOG"; fi
  else
    echo "F $round $kind $name exit $?" >>"$LOG"
  fi
}
# The latency bench prints two RESULT lines (shmq, then the bare futex).
wake() {
  local round=$1 out
  if out=$(timeout 120 "$LAT" wakeup --samples 100000 2>>"$RES/err.log"); then
    printf '%s\n' "$out" | grep '^RESULT' | sed -n "1s/^RESULT /R $round wakeup shmq /p; 2s/^RESULT /R $round wakeup futex /p" >>"$LOG"
  else
    echo "F $round wakeup run exit $?" >>"$LOG"
  fi
}
load() { echo "L $1 $2 $(cut -d' ' -f1 /proc/loadavg) $(awk '/procs_running/ {print $2}' /proc/stat)" >>"$LOG"; }

# probe ROUND KIND: the next placement probe of this pair (probe0, probe1, ...).
pn=0
probe() { step "$1" "$2" "probe$pn" "$PEERS" probe; pn=$((pn + 1)); }

export PEERS_RUNS=1 PEERS_SECS=0.15
say "$PAIRS rounds of four pairs"
for i in $(seq "$PAIRS"); do
  pn=0; load "$i" tput
  probe "$i" tput
  if [ -n "$BPEERS" ]; then step "$i" tput base "$BPEERS" throughput shmq 64 1; probe "$i" tput; fi
  step "$i" tput ring "$PEERS" throughput shm-ring 64 1; probe "$i" tput
  step "$i" tput shmq "$PEERS" throughput shmq 64 1; probe "$i" tput

  pn=0; load "$i" batch
  probe "$i" batch
  if [ -n "$BPEERS" ]; then step "$i" batch base "$BPEERS" throughput shmq 64 64; probe "$i" batch; fi
  step "$i" batch rtrb64 "$PEERS" throughput rtrb 64 64; probe "$i" batch
  step "$i" batch shmq "$PEERS" throughput shmq 64 64; probe "$i" batch
  step "$i" batch rtrb1 "$PEERS" throughput rtrb 64 1; probe "$i" batch

  pn=0; load "$i" pingpong
  probe "$i" pingpong
  if [ -n "$BPEERS" ]; then step "$i" pingpong base "$BPEERS" pingpong shmq "$SAMPLES"; probe "$i" pingpong; fi
  step "$i" pingpong ring "$PEERS" pingpong shm-ring "$SAMPLES"; probe "$i" pingpong
  step "$i" pingpong shmq "$PEERS" pingpong shmq "$SAMPLES"; probe "$i" pingpong
  step "$i" pingpong iceoryx2 "$PEERS" pingpong iceoryx2 "$SAMPLES"; probe "$i" pingpong

  pn=0; load "$i" wakeup
  probe "$i" wakeup
  wake "$i"; probe "$i" wakeup
  say "round $i of $PAIRS done"
done
echo "META2 {\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"end\":\"$(date -u '+%H:%M UTC')\"}" >>"$LOG"

# ---------------------------------------------------------------- callgrind
if [ -z "${PAIRED_NO_CALLGRIND:-}" ] && command -v valgrind >/dev/null; then
  say "callgrind: instructions and locked instructions per message"
  for mode in single batch; do
    scripts/callgrind-per-msg.sh "$PROFILE" "$mode" 64 | sed -n "s/^RESULT /C now $mode /p" >>"$LOG"
    [ -n "$BPROFILE" ] &&
      scripts/callgrind-per-msg.sh "$BPROFILE" "$mode" 64 | sed -n "s/^RESULT /C base $mode /p" >>"$LOG"
  done
fi
fi # PAIRED_REPORT_ONLY

# ---------------------------------------------------------------- report
say "write $OUT_MD"
python3 - "$LOG" "$ROOT" >"$OUT_MD" <<'PY'
import json, re, statistics, sys
from collections import defaultdict

LOG, ROOT = sys.argv[1], sys.argv[2]

# Placement thresholds: the same as bench-peers/src/probe.rs `classify`.
CLOSE_NS, NEAR_NS, FAR_NS, MIN_SHARE = 45.0, 160.0, 380.0, 0.9
ORDER = ["close", "near", "far", "farthest"]
# A run in which both processes busy-poll (every throughput and ping-pong
# run but iceoryx2's, which sleeps 100 ms while its ports connect) must
# have kept both vCPUs busy: CPU time (user + system, children included) /
# (2 x wall) at least this, or the comparisons it is part of are left out.
MIN_STEP_SHARE = 0.8


def classify(p):
    if p.get("cpu_share", 1.0) < MIN_SHARE:
        return "busy"
    t = p["pp_ns"]
    if t < CLOSE_NS:
        return "close"
    if t < NEAR_NS:
        return "near"
    return "far" if t < FAR_NS else "farthest"


meta, meta2 = {}, {}
seqs = defaultdict(list)         # (round, kind) -> [(step, result)] in run order
loads = {}
shares = defaultdict(dict)       # (round, kind) -> step -> CPU share
fails = []
cg = {}
for line in open(LOG):
    line = line.rstrip("\n")
    if line.startswith("META "):
        meta = json.loads(line[5:])
    elif line.startswith("META2 "):
        meta2 = json.loads(line[6:])
    elif line.startswith("R "):
        _, rnd, kind, step, js = line.split(" ", 4)
        seqs[(int(rnd), kind)].append((step, json.loads(js)))
    elif line.startswith("L "):
        _, rnd, kind, l1, running = line.split()
        loads[(int(rnd), kind)] = (float(l1), int(running))
    elif line.startswith("T "):
        _, rnd, kind, step, e, u, sy = line.split()
        if float(e) > 0:
            shares[(int(rnd), kind)][step] = (float(u) + float(sy)) / (2 * float(e))
    elif line.startswith("F "):
        _, rnd, kind, step = line.split()[:4]
        seqs[(int(rnd), kind)].append((step, None))
        fails.append(line[2:])
    elif line.startswith("C "):
        _, who, mode, js = line.split(" ", 3)
        cg[(who, mode)] = json.loads(js)

base = meta.get("base", "")
probes = [r for seq in seqs.values() for st, r in seq if st.startswith("probe") and r]


def span_place(key, first, last):
    """The placement of the runs `first` .. `last` of one pair (in run
    order, any order of the two names): every probe from the one before the
    earlier run to the one after the later run must exist and name it, and
    every busy-polling run in between must have had its CPUs. None if not."""
    seq = seqs[key]
    names = [st for st, _ in seq]
    if first not in names or last not in names:
        return None
    i, j = sorted((names.index(first), names.index(last)))
    lo = i - 1
    hi = j + 1
    if lo < 0 or hi >= len(seq) or not names[lo].startswith("probe") or not names[hi].startswith("probe"):
        return None
    got = set()
    for st, r in seq[lo:hi + 1]:
        if st.startswith("probe"):
            if r is None:
                return None
            got.add(classify(r))
        else:
            if r is None:
                return None
            sh = shares[key].get(st)
            if key[1] != "wakeup" and st != "iceoryx2" and sh is not None and sh < MIN_STEP_SHARE:
                return "short"
    if len(got) != 1:
        return None
    g = got.pop()
    return None if g == "busy" else g


def result(key, step):
    for st, r in seqs[key]:
        if st == step:
            return r
    return None


def tp(r):
    return r["msgs_per_s"] if r else None


def p50(r):
    return r["p50"] if r else None


def collect(kind, a, b, f):
    """Per placement, f(result a, result b) over the pairs whose runs a..b
    the probes around them place there."""
    out = defaultdict(list)
    for key in seqs:
        if key[1] != kind:
            continue
        pl = span_place(key, a, b)
        if pl in (None, "short"):
            continue
        ra, rb = result(key, a), result(key, b)
        try:
            v = f(ra, rb)
        except (TypeError, ZeroDivisionError, KeyError):
            v = None
        if v is not None:
            out[pl].append(v)
    return out


def single(kind, a, f):
    return collect(kind, a, a, lambda ra, rb: f(ra))


def left_out(kind, a, b):
    n = {"disagree": 0, "short": 0}
    for key in seqs:
        if key[1] != kind:
            continue
        pl = span_place(key, a, b)
        if pl is None:
            n["disagree"] += 1
        elif pl == "short":
            n["short"] += 1
    return n


def med(v):
    return statistics.median(v) if v else None


def fr(v, unit="x", nd=2):
    if not v:
        return "n/a"
    return f"{med(v):.{nd}f}{unit} ({min(v):.{nd}f}-{max(v):.{nd}f}, n {len(v)})"


def fns(v):
    if not v:
        return "n/a"
    return f"{med(v):.0f} ns ({min(v):.0f}-{max(v):.0f}, n {len(v)})"


def verdict(v, ok, n_min=5):
    if not v:
        return "not measured"
    if len(v) < n_min:
        return f"too few pairs ({len(v)})"
    return "**met**" if ok(med(v)) else "**missed**"


counts = {pl: sum(1 for q in probes if classify(q) == pl) for pl in ORDER}
common = max(ORDER, key=lambda pl: counts.get(pl, 0)) if probes else "near"

# ------------------------------------------------------------ figures
T = {}
T["ring"] = single("tput", "ring", lambda r: tp(r) / 1e6)
T["shmq"] = single("tput", "shmq", lambda r: tp(r) / 1e6)
T["base"] = single("tput", "base", lambda r: tp(r) / 1e6)
T["shmq/ring"] = collect("tput", "ring", "shmq", lambda a, b: tp(b) / tp(a))
T["base/ring"] = collect("tput", "base", "ring", lambda a, b: tp(a) / tp(b))
T["shmq/base"] = collect("tput", "base", "shmq", lambda a, b: tp(b) / tp(a))
B = {}
B["rtrb64"] = single("batch", "rtrb64", lambda r: tp(r) / 1e6)
B["rtrb1"] = single("batch", "rtrb1", lambda r: tp(r) / 1e6)
B["shmq"] = single("batch", "shmq", lambda r: tp(r) / 1e6)
B["base"] = single("batch", "base", lambda r: tp(r) / 1e6)
B["shmq/rtrb64"] = collect("batch", "rtrb64", "shmq", lambda a, b: tp(b) / tp(a))
B["shmq/rtrb1"] = collect("batch", "shmq", "rtrb1", lambda a, b: tp(a) / tp(b))
B["base/rtrb64"] = collect("batch", "base", "rtrb64", lambda a, b: tp(a) / tp(b))
B["shmq/base"] = collect("batch", "base", "shmq", lambda a, b: tp(b) / tp(a))
P = {}
P["ring"] = single("pingpong", "ring", p50)
P["shmq"] = single("pingpong", "shmq", p50)
P["iceoryx2"] = single("pingpong", "iceoryx2", p50)
P["base"] = single("pingpong", "base", p50)
P["shmq/ring"] = collect("pingpong", "ring", "shmq", lambda a, b: p50(b) / p50(a))
P["shmq/iceoryx2"] = collect("pingpong", "shmq", "iceoryx2", lambda a, b: p50(a) / p50(b))
P["base/ring"] = collect("pingpong", "base", "ring", lambda a, b: p50(a) / p50(b))
P["shmq/base"] = collect("pingpong", "base", "shmq", lambda a, b: p50(b) / p50(a))
W = {}
W["shmq"] = collect("wakeup", "shmq", "futex", lambda a, b: p50(a))
W["futex"] = collect("wakeup", "shmq", "futex", lambda a, b: p50(b))
W["shmq/futex"] = collect("wakeup", "shmq", "futex", lambda a, b: p50(a) / p50(b))
places = [pl for pl in ORDER if any(d.get(pl) for t in (T, B, P, W) for d in t.values())]

o = []
p = o.append
p("<!-- Appended to BENCHMARKS.md by scripts/bench-compare.sh; written by scripts/bench-paired.sh (rerun it to replace this section). -->")
p("## Protocol v2, paired (issue 15)")
p("")
p(f"`scripts/bench-paired.sh {meta.get('pairs', '?')}`: shmq at {meta.get('commit', '?')}"
  + (" (with uncommitted changes to src/)" if meta.get("dirty") else "")
  + (f", base {base} (issue 15's \"today\": format 1)" if base else "")
  + f", {meta.get('date', '?')} to {meta2.get('end', '?')}; 1-minute load {meta.get('load_before', '?').split()[0]} before, "
  + f"{meta2.get('load_after', '?').split()[0]} after"
  + (f" ({min(l for l, _ in loads.values()):.2f} to {max(l for l, _ in loads.values()):.2f} at the start of the pairs; the"
     " benchmark's own two busy processes count in it)" if loads else "")
  + ". AMD EPYC, 2 vCPUs under KVM.")
p("")
p("Each round runs one pair of each kind with a placement probe before the first run and after")
p("each run: `[base], ring, shmq` (1P/1C); `[base], rtrb chunks of 64, shmq, rtrb one at a time`")
p("(batches); `[base], ring, shmq, iceoryx2` (ping-pong); one wake-up run. A ratio counts for a")
p("placement only if every probe around its two runs names that placement (the placement")
p("changes every few seconds, often within a pair). The probe (`peers probe`, a few tens of")
p("milliseconds) times a cache-line ping-pong between two processes, one line transfer, which")
p(f"names the placement: **close** < {CLOSE_NS:.0f} ns, **near** < {NEAR_NS:.0f} ns, **far** < {FAR_NS:.0f} ns, **farthest**")
p(f"beyond; it says **busy** when either process of its short bare-ring run got less than {MIN_SHARE}")
p(f"of its wall time on a CPU (another process ran on the two vCPUs). A comparison is also left")
p(f"out when one of its busy-polling runs got less than {MIN_STEP_SHARE} of two CPUs over its wall time")
p("(GNU time, children included). Cells: median (range, number of pairs).")
p("")
p("Probes in this run, by placement:")
p("")
p("| placement | probes | line transfer, ns: median (range) | probe's bare ring 64 B, M msg/s: median (range) |")
p("|---|---|---|---|")
for pl in ORDER + ["busy"]:
    qs = [q for q in probes if classify(q) == pl]
    if qs:
        pp = [q["pp_ns"] for q in qs]
        rm = [q["ring_mps"] for q in qs]
        p(f"| {pl} | {len(qs)} | {med(pp):.0f} ({min(pp):.0f}-{max(pp):.0f}) | {med(rm):.1f} ({min(rm):.1f}-{max(rm):.1f}) |")
p("")
lo = [("1P/1C shmq/ring", left_out("tput", "ring", "shmq")), ("batches shmq/rtrb", left_out("batch", "rtrb64", "shmq")),
      ("ping-pong shmq/ring", left_out("pingpong", "ring", "shmq")), ("wake-up", left_out("wakeup", "shmq", "futex"))]
p("Pairs left out, placement changed or a probe busy / a run short of CPU: "
  + "; ".join(f"{k} {v['disagree']} / {v['short']}" for k, v in lo) + f" (of {meta.get('pairs', '?')} each).")
if fails:
    p("Failed steps: " + "; ".join(fails) + ".")
p("")

def rate(v):
    return fr(v, "")


def placement_table(title, cols, base_cols, shown_by, cells, base_cells):
    """A table with a row per placement in which any ratio of `shown_by`
    (a list of (table, key)) has pairs: the `cells` of this tree, then, with
    a base build, its `base_cells` (each a list of (table, key, format))."""
    p(title)
    p("")
    p("| placement | " + " | ".join(cols) + " |" + ("".join(f" {c} |" for c in base_cols) if base else ""))
    p("|---" * (1 + len(cols)) + "|" + ("---|" * len(base_cols) if base else ""))
    for pl in places:
        if not any(D[k].get(pl) for D, k in shown_by):
            continue
        shown = cells + (base_cells if base else [])
        p(f"| {pl} | " + " | ".join(f(D[k].get(pl)) for D, k, f in shown) + " |")
    p("")


placement_table(
    "### 1P/1C, 64 B, lease + ack per message (shmq) against the bare ring",
    ["ring, M msg/s", "shmq, M msg/s", "shmq / ring"],
    [f"base ({base}), M msg/s", "base / ring", "shmq / base"],
    [(T, "shmq/ring"), (T, "base/ring")],
    [(T, "ring", rate), (T, "shmq", rate), (T, "shmq/ring", fr)],
    [(T, "base", rate), (T, "base/ring", fr), (T, "shmq/base", fr)])
placement_table(
    "### Batches of 64, 64 B, against rtrb (in-process, two threads)",
    ["rtrb chunks of 64, M msg/s", "rtrb one at a time", "shmq batches of 64",
     "shmq / rtrb chunks", "shmq / rtrb one at a time"],
    ["base", "base / rtrb chunks", "shmq / base"],
    [(B, "shmq/rtrb64"), (B, "shmq/rtrb1")],
    [(B, "rtrb64", rate), (B, "rtrb1", rate), (B, "shmq", rate), (B, "shmq/rtrb64", fr),
     (B, "shmq/rtrb1", fr)],
    [(B, "base", rate), (B, "base/rtrb64", fr), (B, "shmq/base", fr)])
placement_table(
    f"### Ping-pong, one-way p50 (round trip / 2), 64 B, {meta.get('samples', '?')} round trips per run",
    ["ring", "shmq", "iceoryx2", "shmq / ring", "shmq / iceoryx2"],
    ["base", "base / ring", "shmq / base"],
    [(P, "shmq/ring"), (P, "shmq/iceoryx2")],
    [(P, "ring", fns), (P, "shmq", fns), (P, "iceoryx2", fns), (P, "shmq/ring", fr),
     (P, "shmq/iceoryx2", fr)],
    [(P, "base", fns), (P, "base/ring", fr), (P, "shmq/base", fr)])
p("### Parked wake-up against a bare futex")
p("")
p("`latency wakeup --samples 100000` (benches/latency.rs): a consumer asleep in FUTEX_WAIT inside")
p("`receive_into` (spin tries 0) against a bare FUTEX_WAIT/FUTEX_WAKE pair between two")
p("processes, alternating blocks of 1,000 in one run (2,000 wake-ups each); the sender writes")
p("its clock into the message (or a shared word) 300 µs after the previous one, the woken side")
p("records now - sent. Ratio = shmq p50 / futex p50 within the run.")
p("")
p("| placement | shmq p50 | futex p50 | shmq / futex |")
p("|---|---|---|---|")
for pl in places:
    if W["shmq/futex"].get(pl):
        p(f"| {pl} | {fns(W['shmq'].get(pl))} | {fns(W['futex'].get(pl))} | {fr(W['shmq/futex'].get(pl))} |")
p("")

if cg:
    p("### Instructions and locked instructions per message (callgrind)")
    p("")
    p("`scripts/callgrind-per-msg.sh PROFILE MODE 64`: the single-thread loop of")
    p("bench-peers/src/bin/profile.rs under callgrind with 10,000 and 30,000 messages; per message =")
    p("(count(30000) - count(10000)) / 20000. Locked = executed instructions with a `lock` prefix or")
    p("an `xchg` with memory (callgrind's per-instruction counts, `--dump-instr=yes`, matched to")
    p("`objdump -d`; this VM has no hardware counters).")
    p("")
    p("| build | loop | instructions / message | locked RMWs / message |")
    p("|---|---|---|---|")
    for who in ("base", "now"):
        for mode in ("single", "batch"):
            c = cg.get((who, mode))
            if c:
                name = f"base {base}" if who == "base" else f"{meta.get('commit', 'now')}"
                p(f"| {name} | {mode} | {c['instr_per_msg']:.0f} | {c['locked_per_msg']:.2f} |")
    p("")
    for who in ("now", "base"):
        c = cg.get((who, "single"))
        if not c:
            continue
        p(f"Locked sites, `single`, {'base ' + base if who == 'base' else meta.get('commit', 'now')} (executions per message):")
        p("")
        p("| per message | function | instruction |")
        p("|---|---|---|")
        for site in c["sites"]:
            fn = site["fn"] or "?"
            for _ in range(3):
                fn = re.sub(r"<[^<>]*>", "", fn)
            p(f"| {site['per_msg']:.2f} | `{fn}` | `{site['ins']}` |")
        p("")
    c = cg.get(("now", "single"))
    if c and c.get("inclusive"):
        p(f"Inclusive instructions per message, `single`, {meta.get('commit', 'now')}: "
          + ", ".join(f"`{re.sub(r'<[^<>]*>', '', re.sub(r'<[^<>]*>', '', f['fn'])).replace('shmq::', '')}` {f['per_msg']:.0f}"
                      for f in c["inclusive"][:12]) + ".")
        p("")

p("### Targets (issue 15)")
p("")
p("Verdict on the median within-pair ratio of each placement with at least 5 pairs (placements")
p("without a single pair for a target are not listed).")
p("\"Today's ratio\": the issue's baseline, shmq 4.9-5.5 M msg/s against a ring of 19-78 M msg/s")
p("(0.06x-0.29x), ping-pong p50 416-521 ns (ring 50-105 ns, iceoryx2 481-741 ns)"
  + (f"; measured here per placement as the base build {base} paired with the same ring." if base else "."))
p("")
p("| target | placement | figure | result |")
p("|---|---|---|---|")
for pl in places:
    if pl == common:
        v = T["shmq/ring"].get(pl)
        p(f"| 1P/1C 64 B lease+ack >= 0.5x the ring, common placement | {pl} | {fr(v)} | {verdict(v, lambda m: m >= 0.5)} |")
for pl in places:
    v = T["shmq/ring"].get(pl)
    if not v:
        continue
    if base:
        b = T["base/ring"].get(pl)
        ok = "too few pairs (no base pair)"
        if v and b:
            ok = (f"too few pairs ({min(len(v), len(b))})" if min(len(v), len(b)) < 5
                  else ("**met**" if med(v) >= 2 * med(b) else "**missed**"))
        p(f"| 1P/1C >= 2x today's ratio | {pl} | shmq/ring {fr(v)} against 2 x base/ring = "
          + (f"{2 * med(b):.2f}x" if b else "n/a") + f"; shmq/base in the same pairs {fr(T['shmq/base'].get(pl))} | {ok} |")
    else:
        p(f"| 1P/1C >= 2x today's ratio (0.12x-0.58x) | {pl} | {fr(v)} | see the text |")
for pl in places:
    v = B["shmq/rtrb64"].get(pl)
    if not v:
        continue
    p(f"| batches of 64 >= 0.8x rtrb (chunks of 64) | {pl} | {fr(v)}; against rtrb one at a time {fr(B['shmq/rtrb1'].get(pl))} | {verdict(v, lambda m: m >= 0.8)} |")
for pl in places:
    v = P["shmq/iceoryx2"].get(pl)
    if not v:
        continue
    p(f"| ping-pong p50 <= 0.5x iceoryx2 | {pl} | {fr(v)} | {verdict(v, lambda m: m <= 0.5)} |")
for pl in places:
    v = P["shmq/ring"].get(pl)
    if not v:
        continue
    p(f"| ping-pong p50 <= 2.5x the ring | {pl} | {fr(v)} | {verdict(v, lambda m: m <= 2.5)} |")
for pl in places:
    v = W["shmq/futex"].get(pl)
    if v:
        p(f"| parked wake-up p50 <= 1.2x a bare futex | {pl} | {fr(v)} | {verdict(v, lambda m: m <= 1.2)} |")
c, cb = cg.get(("now", "single")), cg.get(("base", "single"))
if c:
    p(f"| callgrind instructions per message, reported (1,548 in the issue) | - | "
      + (f"{cb['instr_per_msg']:.0f} at {base} -> " if cb else "")
      + f"{c['instr_per_msg']:.0f} now (batch of 64: "
      + (f"{cg[('base', 'batch')]['instr_per_msg']:.0f} -> " if ("base", "batch") in cg else "")
      + (f"{cg[('now', 'batch')]['instr_per_msg']:.0f})" if ("now", "batch") in cg else "n/a)")
      + " | reported |")
    p(f"| locked instructions per message, reported | - | "
      + (f"{cb['locked_per_msg']:.2f} at {base} -> " if cb else "")
      + f"{c['locked_per_msg']:.2f} now (batch of 64: "
      + (f"{cg[('base', 'batch')]['locked_per_msg']:.2f} -> " if ("base", "batch") in cg else "")
      + (f"{cg[('now', 'batch')]['locked_per_msg']:.2f})" if ("now", "batch") in cg else "n/a)")
      + " | reported |")
p("")
print("\n".join(o))
PY
say "done: $OUT_MD (raw: $LOG)"
