#!/usr/bin/env bash
# Paired measurement of shmq against the bare shared-mapping ring, rtrb,
# iceoryx2 and a bare futex (issue 15), placement by placement:
#
#   scripts/bench-paired.sh [PAIRS]          (default 60)
#
# This VM's two vCPUs move between placements every few seconds to minutes,
# and the placement changes a cache-line transfer between them from about
# 30 to about 480 ns and the bare ring's 64 B throughput between about 10
# and 90 M msg/s. So every shmq figure is taken right after the figure it
# is compared with, placement probes (`peers probe`,
# bench-peers/src/probe.rs) run before, between and after the runs, and a
# ratio counts for a placement only if every probe of its pair names it.
# Each round makes one pair of each kind:
#
#   tput      shm-ring 64 B, shmq 64 B lease+ack, [base shmq]
#   batch     rtrb 64 B chunks of 64, rtrb one at a time,
#             shmq batches of 64, [base shmq batches of 64]
#   pingpong  shm-ring, shmq, [base shmq], iceoryx2 (one-way p50)
#   wakeup    parked shmq consumer against a bare futex (the latency
#             bench's `wakeup`: alternating blocks in one run)
#
# with a probe before the first run, after each run. Throughput runs are
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
# Writes target/bench-paired/log (every RESULT line, tagged with its round,
# kind and step) and benches/results/paired.md (appended to BENCHMARKS.md by
# scripts/bench-compare.sh). A full run of 60 rounds takes about 5 minutes
# after the builds; the first build of the base takes a few minutes more.
#
# Environment:
#   PAIRED_BASE=REV        the base revision (default f944f59; empty: none)
#   PAIRED_SAMPLES=N       ping-pong round trips per run (default 200000)
#   PAIRED_WAIT_QUIET=S    wait up to S seconds (default 0) for the 1-minute
#                          load average to drop below 0.6 before measuring
#   PAIRED_NO_CALLGRIND=1  skip the callgrind counts
#   PAIRED_REPORT_ONLY=1   measure nothing: rewrite the report from the log
#   CARGO_TARGET_DIR       where this tree's bench-peers and benches build
#                          (default: bench-peers/target and target)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PAIRS=${1:-60}
BASE=${PAIRED_BASE-f944f59}
SAMPLES=${PAIRED_SAMPLES:-200000}
RES=$ROOT/target/bench-paired
LOG=$RES/log
OUT_MD=$ROOT/benches/results/paired.md
export CARGO_TERM_COLOR=never

say() { printf '== %s (%s, load %s)\n' "$1" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1 /proc/loadavg)" >&2; }

if [ -z "${PAIRED_REPORT_ONLY:-}" ]; then
mkdir -p "$RES"

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
# and its wall and CPU time (with its children's: GNU time) as a T line.
step() {
  local round=$1 kind=$2 name=$3
  shift 3
  local out
  if out=$(/usr/bin/time -f '%e %U %S' -o "$RES/time.tmp" timeout 120 "$@" 2>>"$RES/err.log"); then
    printf '%s\n' "$out" | sed -n "s/^RESULT /R $round $kind $name /p" >>"$LOG"
    echo "T $round $kind $name $(tail -1 "$RES/time.tmp")" >>"$LOG"
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
  step "$i" tput ring "$PEERS" throughput shm-ring 64 1; probe "$i" tput
  step "$i" tput shmq "$PEERS" throughput shmq 64 1; probe "$i" tput
  if [ -n "$BPEERS" ]; then step "$i" tput base "$BPEERS" throughput shmq 64 1; probe "$i" tput; fi

  pn=0; load "$i" batch
  probe "$i" batch
  step "$i" batch rtrb64 "$PEERS" throughput rtrb 64 64; probe "$i" batch
  step "$i" batch rtrb1 "$PEERS" throughput rtrb 64 1; probe "$i" batch
  step "$i" batch shmq "$PEERS" throughput shmq 64 64; probe "$i" batch
  if [ -n "$BPEERS" ]; then step "$i" batch base "$BPEERS" throughput shmq 64 64; probe "$i" batch; fi

  pn=0; load "$i" pingpong
  probe "$i" pingpong
  step "$i" pingpong ring "$PEERS" pingpong shm-ring "$SAMPLES"; probe "$i" pingpong
  step "$i" pingpong shmq "$PEERS" pingpong shmq "$SAMPLES"; probe "$i" pingpong
  if [ -n "$BPEERS" ]; then step "$i" pingpong base "$BPEERS" pingpong shmq "$SAMPLES"; probe "$i" pingpong; fi
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
# A step in which both processes busy-poll (every throughput and ping-pong
# step but iceoryx2's, which sleeps 100 ms while its ports connect) must
# have kept both vCPUs busy: CPU time (user + system, children included) /
# (2 x wall) at least this, or its pair is left out as busy.
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
res = defaultdict(dict)          # (round, kind) -> step -> result
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
        res[(int(rnd), kind)][step] = json.loads(js)
    elif line.startswith("L "):
        _, rnd, kind, l1, running = line.split()
        loads[(int(rnd), kind)] = (float(l1), int(running))
    elif line.startswith("T "):
        _, rnd, kind, step, e, u, sy = line.split()
        if float(e) > 0:
            shares[(int(rnd), kind)][step] = (float(u) + float(sy)) / (2 * float(e))
    elif line.startswith("F "):
        fails.append(line[2:])
    elif line.startswith("C "):
        _, who, mode, js = line.split(" ", 3)
        cg[(who, mode)] = json.loads(js)

base = meta.get("base", "")
probes = []
groups = defaultdict(lambda: defaultdict(list))   # kind -> placement -> [pair dict]
mixed = defaultdict(int)
busy_steps = defaultdict(int)
for (rnd, kind), steps in sorted(res.items()):
    ps = [v for k, v in steps.items() if k.startswith("probe")]
    probes.extend(ps)
    names = {classify(q) for q in ps}
    if len(ps) < 2 or len(names) != 1 or "busy" in names or any(f.startswith(f"{rnd} {kind} probe") for f in fails):
        mixed[kind] += 1
        continue
    a = names.pop()
    low = [st for st, v in shares[(rnd, kind)].items()
           if kind != "wakeup" and not st.startswith("probe") and st != "iceoryx2" and v < MIN_STEP_SHARE]
    if low:
        busy_steps[kind] += 1
        continue
    groups[kind][a].append(steps)


def tp(s, k):
    r = s.get(k)
    return r["msgs_per_s"] if r else None


def p50(s, k):
    r = s.get(k)
    return r["p50"] if r else None


def ratios(pairs, f):
    out = []
    for s in pairs:
        try:
            v = f(s)
        except (TypeError, ZeroDivisionError, KeyError):
            v = None
        if v is not None:
            out.append(v)
    return out


def med(v):
    return statistics.median(v) if v else None


def fr(v, unit="x"):
    if not v:
        return "n/a"
    m = med(v)
    return f"{m:.2f}{unit} ({min(v):.2f}-{max(v):.2f})"


def fns(v):
    if not v:
        return "n/a"
    return f"{med(v):.0f} ns ({min(v):.0f}-{max(v):.0f})"


def verdict(v, ok, n_min=3):
    if not v:
        return "not measured"
    if len(v) < n_min:
        return f"too few pairs ({len(v)})"
    return "**met**" if ok(med(v)) else "**missed**"


places = [p for p in ORDER if any(groups[k].get(p) for k in groups)]
counts = {p: sum(1 for q in probes if classify(q) == p) for p in ORDER}
common = max(ORDER, key=lambda p: counts.get(p, 0)) if probes else "near"

o = []
p = o.append
p("<!-- Appended to BENCHMARKS.md by scripts/bench-compare.sh; written by scripts/bench-paired.sh (rerun it to replace this section). -->")
p("## Protocol v2, paired (issue 15)")
p("")
p(f"`scripts/bench-paired.sh {meta.get('pairs', '?')}`: shmq at {meta.get('commit', '?')}"
  + (" (with uncommitted changes to src/)" if meta.get("dirty") else "")
  + (f", base {base} (issue 15's \"today\": format 1)" if base else "")
  + f", {meta.get('date', '?')}; 1-minute load {meta.get('load_before', '?').split()[0]} before, "
  + f"{meta2.get('load_after', '?').split()[0]} after"
  + (f" (at the start of each pair: {min(l for l, _ in loads.values()):.2f} to {max(l for l, _ in loads.values()):.2f})" if loads else "")
  + ". AMD EPYC, 2 vCPUs under KVM.")
p("")
p("Each pair: a placement probe, the reference run, a probe, the shmq run, a probe, the base")
p("run, a probe (and so on); a pair counts for a placement only if every probe in it names")
p("that placement. The probe (`peers probe`, a few tens of milliseconds)")
p("measures a cache-line ping-pong between two processes (one line transfer), which names the")
p(f"placement: **close** < {CLOSE_NS:.0f} ns, **near** < {NEAR_NS:.0f} ns, **far** < {FAR_NS:.0f} ns, **farthest** beyond;")
p(f"**busy** = either process of the probe's short bare-ring run got less than {MIN_SHARE} of its wall time")
p("on a CPU (another process ran on the two vCPUs). A pair is also left out when one of its")
p(f"busy-polling runs got less than {MIN_STEP_SHARE} of two CPUs over its wall time (GNU time, children")
p("included).")
p("Ratios are taken within each pair; a cell gives the median and the range over the pairs.")
p("")

# probe distribution
p("Probes in this run (both ends of every pair), by placement:")
p("")
p("| placement | probes | line transfer, ns: median (range) | ring 64 B, M msg/s: median (range) |")
p("|---|---|---|---|")
for pl in ORDER + ["busy"]:
    qs = [q for q in probes if classify(q) == pl]
    if qs:
        pp = [q["pp_ns"] for q in qs]
        rm = [q["ring_mps"] for q in qs]
        p(f"| {pl} | {len(qs)} | {med(pp):.0f} ({min(pp):.0f}-{max(pp):.0f}) | {med(rm):.1f} ({min(rm):.1f}-{max(rm):.1f}) |")
p("")
p("Pairs left out because their probes disagreed (the placement changed during the pair), a")
p("probe said busy or failed: " + ", ".join(f"{k} {mixed.get(k, 0)}" for k in ("tput", "batch", "pingpong", "wakeup"))
  + "; because a run in them was short of CPU: " + ", ".join(f"{k} {busy_steps.get(k, 0)}" for k in ("tput", "batch", "pingpong")) + ".")
if fails:
    p("Failed steps: " + "; ".join(fails) + ".")
p("")

# ------------------------------------------------------------ tables
p("### 1P/1C, 64 B, lease + ack per message (shmq) against the bare ring")
p("")
hdr = "| placement | pairs | ring M msg/s | shmq M msg/s | shmq / ring |"
sep = "|---|---|---|---|---|"
if base:
    hdr += f" base / ring | shmq / base |"
    sep += "---|---|"
p(hdr)
p(sep)
for pl in places:
    g = groups["tput"].get(pl, [])
    if not g:
        continue
    row = (f"| {pl} | {len(g)} | {fr(ratios(g, lambda s: tp(s, 'ring') / 1e6), '')} | "
           f"{fr(ratios(g, lambda s: tp(s, 'shmq') / 1e6), '')} | "
           f"{fr(ratios(g, lambda s: tp(s, 'shmq') / tp(s, 'ring')))} |")
    if base:
        row += (f" {fr(ratios(g, lambda s: tp(s, 'base') / tp(s, 'ring')))} | "
                f"{fr(ratios(g, lambda s: tp(s, 'shmq') / tp(s, 'base')))} |")
    p(row)
p("")

p("### Batches of 64, 64 B, against rtrb (in-process, two threads)")
p("")
hdr = "| placement | pairs | rtrb chunks of 64, M msg/s | rtrb one at a time | shmq batches of 64 | shmq / rtrb chunks | shmq / rtrb one at a time |"
sep = "|---|---|---|---|---|---|---|"
if base:
    hdr += " base / rtrb chunks | shmq / base |"
    sep += "---|---|"
p(hdr)
p(sep)
for pl in places:
    g = groups["batch"].get(pl, [])
    if not g:
        continue
    row = (f"| {pl} | {len(g)} | {fr(ratios(g, lambda s: tp(s, 'rtrb64') / 1e6), '')} | "
           f"{fr(ratios(g, lambda s: tp(s, 'rtrb1') / 1e6), '')} | "
           f"{fr(ratios(g, lambda s: tp(s, 'shmq') / 1e6), '')} | "
           f"{fr(ratios(g, lambda s: tp(s, 'shmq') / tp(s, 'rtrb64')))} | "
           f"{fr(ratios(g, lambda s: tp(s, 'shmq') / tp(s, 'rtrb1')))} |")
    if base:
        row += (f" {fr(ratios(g, lambda s: tp(s, 'base') / tp(s, 'rtrb64')))} | "
                f"{fr(ratios(g, lambda s: tp(s, 'shmq') / tp(s, 'base')))} |")
    p(row)
p("")

p(f"### Ping-pong, one-way p50 (round trip / 2), 64 B, {meta.get('samples', '?')} round trips per run")
p("")
hdr = "| placement | pairs | ring | shmq | iceoryx2 | shmq / ring | shmq / iceoryx2 |"
sep = "|---|---|---|---|---|---|---|"
if base:
    hdr += " base | base / ring | base / iceoryx2 |"
    sep += "---|---|---|"
p(hdr)
p(sep)
for pl in places:
    g = groups["pingpong"].get(pl, [])
    if not g:
        continue
    row = (f"| {pl} | {len(g)} | {fns(ratios(g, lambda s: p50(s, 'ring')))} | "
           f"{fns(ratios(g, lambda s: p50(s, 'shmq')))} | {fns(ratios(g, lambda s: p50(s, 'iceoryx2')))} | "
           f"{fr(ratios(g, lambda s: p50(s, 'shmq') / p50(s, 'ring')))} | "
           f"{fr(ratios(g, lambda s: p50(s, 'shmq') / p50(s, 'iceoryx2')))} |")
    if base:
        row += (f" {fns(ratios(g, lambda s: p50(s, 'base')))} | "
                f"{fr(ratios(g, lambda s: p50(s, 'base') / p50(s, 'ring')))} | "
                f"{fr(ratios(g, lambda s: p50(s, 'base') / p50(s, 'iceoryx2')))} |")
    p(row)
p("")

p("### Parked wake-up against a bare futex")
p("")
p("`latency wakeup` (benches/latency.rs): a consumer asleep in FUTEX_WAIT inside `receive_into`")
p("(spin tries 0) against a bare FUTEX_WAIT/FUTEX_WAKE pair between two processes, in")
p("alternating blocks of 1,000 in one run; the sender writes its clock into the message (or a")
p("shared word) 300 µs after the previous one, the woken side records now - sent. Ratio = shmq")
p("p50 / futex p50 within the run.")
p("")
p("| placement | runs | shmq p50 | futex p50 | shmq / futex |")
p("|---|---|---|---|---|")
for pl in places:
    g = groups["wakeup"].get(pl, [])
    if not g:
        continue
    p(f"| {pl} | {len(g)} | {fns(ratios(g, lambda s: p50(s, 'shmq')))} | {fns(ratios(g, lambda s: p50(s, 'futex')))} | "
      f"{fr(ratios(g, lambda s: p50(s, 'shmq') / p50(s, 'futex')))} |")
p("")

# ------------------------------------------------------------ callgrind
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
        for s in c["sites"]:
            fn = s["fn"] or "?"
            for _ in range(3):
                fn = re.sub(r"<[^<>]*>", "", fn)
            p(f"| {s['per_msg']:.2f} | `{fn}` | `{s['ins']}` |")
        p("")

# ------------------------------------------------------------ targets
p("### Targets (issue 15)")
p("")
p("Verdict on the median within-pair ratio of each placement (at least 3 pairs).")
p(f"\"Today's ratio\": the issue's baseline, shmq 4.9-5.5 M msg/s against a ring of 19-78 M msg/s")
p("(0.06x-0.29x), ping-pong p50 416-521 ns (ring 50-105 ns, iceoryx2 481-741 ns)"
  + (f"; measured here per placement as the base build {base} in the same pairs." if base else "."))
p("")
p("| target | placement | pairs | figure | result |")
p("|---|---|---|---|---|")
for pl in places:
    g = groups["tput"].get(pl, [])
    v = ratios(g, lambda s: tp(s, "shmq") / tp(s, "ring"))
    if pl == common:
        p(f"| 1P/1C 64 B lease+ack >= 0.5x the ring, common placement | {pl} | {len(v)} | {fr(v)} | {verdict(v, lambda m: m >= 0.5)} |")
for pl in places:
    g = groups["tput"].get(pl, [])
    v = ratios(g, lambda s: tp(s, "shmq") / tp(s, "ring"))
    if base:
        b = ratios(g, lambda s: tp(s, "base") / tp(s, "ring"))
        w = ratios(g, lambda s: tp(s, "shmq") / tp(s, "base"))
        fig = f"shmq/ring {fr(v)}; base/ring {fr(b)}; shmq/base within pairs {fr(w)}"
        p(f"| 1P/1C >= 2x today's ratio | {pl} | {len(w)} | {fig} | {verdict(w, lambda m: m >= 2.0)} |")
    else:
        p(f"| 1P/1C >= 2x today's ratio (0.12x-0.58x) | {pl} | {len(v)} | {fr(v)} | see the text |")
for pl in places:
    g = groups["batch"].get(pl, [])
    v = ratios(g, lambda s: tp(s, "shmq") / tp(s, "rtrb64"))
    v1 = ratios(g, lambda s: tp(s, "shmq") / tp(s, "rtrb1"))
    p(f"| batches of 64 >= 0.8x rtrb (chunks of 64) | {pl} | {len(v)} | {fr(v)} (against rtrb one at a time: {fr(v1)}) | {verdict(v, lambda m: m >= 0.8)} |")
for pl in places:
    g = groups["pingpong"].get(pl, [])
    v = ratios(g, lambda s: p50(s, "shmq") / p50(s, "iceoryx2"))
    p(f"| ping-pong p50 <= 0.5x iceoryx2 | {pl} | {len(v)} | {fr(v)} | {verdict(v, lambda m: m <= 0.5)} |")
for pl in places:
    g = groups["pingpong"].get(pl, [])
    v = ratios(g, lambda s: p50(s, "shmq") / p50(s, "ring"))
    p(f"| ping-pong p50 <= 2.5x the ring | {pl} | {len(v)} | {fr(v)} | {verdict(v, lambda m: m <= 2.5)} |")
for pl in places:
    g = groups["wakeup"].get(pl, [])
    v = ratios(g, lambda s: p50(s, "shmq") / p50(s, "futex"))
    p(f"| parked wake-up p50 <= 1.2x a bare futex | {pl} | {len(v)} | {fr(v)} | {verdict(v, lambda m: m <= 1.2)} |")
c, cb = cg.get(("now", "single")), cg.get(("base", "single"))
if c:
    p(f"| callgrind instructions per message, reported (1,548 in the issue) | - | - | "
      + (f"{cb['instr_per_msg']:.0f} at {base} -> " if cb else "")
      + f"{c['instr_per_msg']:.0f} now (batch of 64: "
      + (f"{cg[('base', 'batch')]['instr_per_msg']:.0f} -> " if ("base", "batch") in cg else "")
      + (f"{cg[('now', 'batch')]['instr_per_msg']:.0f})" if ("now", "batch") in cg else "n/a)")
      + " | reported |")
    p(f"| locked instructions per message, reported | - | - | "
      + (f"{cb['locked_per_msg']:.2f} at {base} -> " if cb else "")
      + f"{c['locked_per_msg']:.2f} now (batch of 64: "
      + (f"{cg[('base', 'batch')]['locked_per_msg']:.2f} -> " if ("base", "batch") in cg else "")
      + (f"{cg[('now', 'batch')]['locked_per_msg']:.2f})" if ("now", "batch") in cg else "n/a)")
      + " | reported |")
p("")
print("\n".join(o))
PY
say "done: $OUT_MD (raw: $LOG)"
