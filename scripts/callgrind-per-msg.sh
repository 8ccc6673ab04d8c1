#!/usr/bin/env bash
# Instructions and locked read-modify-writes per message of the single-thread
# profile loop (bench-peers/src/bin/profile.rs), counted by callgrind:
#
#   scripts/callgrind-per-msg.sh PROFILE_BINARY [MODE] [SIZE]
#
# MODE is `single` (send -> try_receive_into -> ack) or `batch` (batches of
# 64), SIZE the payload (default 64). The loop runs twice under
# `valgrind --tool=callgrind --dump-instr=yes`, with 10,000 and 30,000
# messages; every figure is (count(30000) - count(10000)) / 20000, so the
# set-up (queue creation, registration, mapping) cancels out.
#
# Locked instructions: this VM exposes no hardware counters (`perf stat`
# has software events only), so the count is taken from callgrind's
# per-instruction execution counts (`--dump-instr=yes`: every instruction
# address of every object with the number of times it ran) and the objects'
# disassembly (`objdump -d`): an executed instruction counts as a locked
# read-modify-write when it carries a `lock` prefix or is an `xchg` with a
# memory operand (implicitly locked: what a SeqCst store compiles to on
# x86-64). `mfence` is counted apart (a barrier, not an RMW). Prints the
# totals and every locked site with its executions per message, its
# function and its instruction, and the inclusive instructions per message
# of shmq's functions (callgrind_annotate --inclusive=yes), as
# `RESULT {json}` and tables.
set -euo pipefail
BIN=${1:?PROFILE_BINARY}
MODE=${2:-single}
SIZE=${3:-64}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for n in 10000 30000; do
  (cd "$WORK" && valgrind --tool=callgrind --dump-instr=yes \
    --callgrind-out-file="$WORK/cg-$n.out" "$BIN" "$MODE" "$n" "$SIZE" >"$WORK/run-$n.txt" 2>&1)
done
python3 - "$WORK" "$BIN" "$MODE" "$SIZE" <<'PY'
import json, re, subprocess, sys
from collections import defaultdict

work, binary, mode, size = sys.argv[1:5]


def parse(path):
    """Self cost per (object, instruction address), and each address's
    function name. Call lines (after `calls=`) carry inclusive costs of the
    callee and are skipped; positions are `instr line`, each absolute,
    relative (+N, -N) to the previous cost line's, or `*` (the same)."""
    names = {"ob": {}, "fn": {}}
    cost = defaultdict(int)
    func = {}
    ob = fn = None
    last = [0, 0]
    skip_next = False
    total = None

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    def pos(tok, i):
        if tok == "*":
            return last[i]
        if tok[0] in "+-":
            return last[i] + int(tok, 0)
        return int(tok, 0)

    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
            continue
        if line[0] in "0123456789+-*":
            toks = line.split()
            a = pos(toks[0], 0)
            ln = pos(toks[1], 1) if len(toks) > 1 else last[1]
            last[0], last[1] = a, ln
            if skip_next:
                skip_next = False
                continue
            c = int(toks[2]) if len(toks) > 2 else 0
            cost[(ob, a)] += c
            func.setdefault((ob, a), fn)
            continue
        key, _, rest = line.partition("=")
        if key == "ob":
            ob = name("ob", rest)
        elif key == "cob":
            name("ob", rest)
        elif key == "fn":
            fn = name("fn", rest)
        elif key == "cfn" or key == "cfi" or key == "cfl":
            if key == "cfn":
                name("fn", rest)
        elif key == "calls":
            skip_next = True
    return total, cost, func


def disasm(obj):
    """Address -> instruction text for every instruction of an object file."""
    out = {}
    try:
        text = subprocess.run(["objdump", "-d", "-w", "--no-show-raw-insn", obj],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return out
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)$", line)
        if m:
            out[int(m.group(1), 16)] = m.group(2).strip()
    return out


def locked(ins):
    if ins.startswith("lock "):
        return "locked"
    if re.match(r"xchg[bwlq]?\s", ins) and "(" in ins:
        return "locked"
    if ins.startswith("mfence"):
        return "mfence"
    return None


runs = {n: parse(f"{work}/cg-{n}.out") for n in (10000, 30000)}
per = 20000
tot = (runs[30000][0] - runs[10000][0]) / per
objs = {o for n in runs for (o, _) in runs[n][1]}
dis = {o: disasm(o) for o in objs if o and o.startswith("/")}
sites = defaultdict(float)
fences = 0.0
for n, sign in ((30000, 1), (10000, -1)):
    _, cost, func = runs[n]
    for (o, a), c in cost.items():
        ins = dis.get(o, {}).get(a)
        if ins is None:
            continue
        k = locked(ins)
        if k == "locked":
            sites[(o, a, func.get((o, a)), ins)] += sign * c
        elif k == "mfence":
            fences += sign * c


def inclusive(path):
    """Inclusive Ir per function symbol (entries that name an object, not
    the inlined-source entries), from callgrind_annotate."""
    out = defaultdict(int)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          capture_output=True, text=True).stdout
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+[^:]*:(.*) \[(.*)\]$", line)
        if m:
            out[m.group(2)] = max(out[m.group(2)], int(m.group(1).replace(",", "")))
    return out


inc = {n: inclusive(f"{work}/cg-{n}.out") for n in (10000, 30000)}
funcs = []
for f in inc[30000]:
    if re.search(r"shmq::|crc32|clock_gettime|memcpy|memmove", f):
        d = (inc[30000][f] - inc[10000].get(f, 0)) / per
        if d >= 5:
            funcs.append((d, f))
funcs.sort(key=lambda r: -r[0])
rows = [(c / per, o, a, f, i) for (o, a, f, i), c in sites.items() if abs(c) >= per * 0.005]
rows.sort(key=lambda r: -r[0])
locked_total = sum(c for c in sites.values()) / per
print(f"profile {mode} {size} B: {tot:.0f} instructions per message, "
      f"{locked_total:.2f} locked read-modify-writes per message, {fences / per:.2f} mfence")
print("| per message | function | instruction |")
print("|---|---|---|")
for c, o, a, f, i in rows:
    short = re.sub(r"<[^<>]*>", "", f or "?")
    short = re.sub(r"<[^<>]*>", "", short)
    print(f"| {c:.2f} | `{short}` (+{a:#x} in {o.rsplit('/', 1)[-1]}) | `{i}` |")
print()
print("| inclusive instructions per message | function |")
print("|---|---|")
for d, f in funcs[:20]:
    short = f
    for _ in range(3):
        short = re.sub(r"<[^<>]*>", "", short)
    print(f"| {d:.0f} | `{short}` |")
print("RESULT " + json.dumps({
    "kind": "callgrind", "mode": mode, "size": int(size), "instr_per_msg": round(tot, 1),
    "locked_per_msg": round(locked_total, 2), "mfence_per_msg": round(fences / per, 2),
    "sites": [{"per_msg": round(c, 3), "fn": f, "ins": i} for c, o, a, f, i in rows],
    "inclusive": [{"per_msg": round(d, 1), "fn": f} for d, f in funcs[:20]]}))
PY
