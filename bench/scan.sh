#!/usr/bin/env bash
# offkey scan vs ripgrep on a 200 MB synthetic corpus (see bench/README.md), plus peak RSS, the
# wall time of a one-file scan and a recall/precision check against the corpus's truth.json.
#
#   bench/scan.sh [SHARED_DIR]
#
# SHARED_DIR (or $OFFKEY_SHARED) holds bench/gen_corpus.py; default: ../shared next to the repo.
# Environment: RUNS (timed runs per tool, default 10), SIZE_MB (200), SEED (1), INSTRUCTIONS
# (0: skip the instruction counts under valgrind),
# BENCH_DIR (/tmp/offkey-bench: corpus, truth.json, reports), CARGO_TARGET_DIR (release build).
# A benchmark, not a test: it prints numbers and fails only if something cannot run.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${1:-${OFFKEY_SHARED:-$repo/../shared}}"
runs="${RUNS:-10}"
size_mb="${SIZE_MB:-200}"
seed="${SEED:-1}"
work="${BENCH_DIR:-/tmp/offkey-bench}"
corpus="$work/corpus"
target="${CARGO_TARGET_DIR:-$repo/target}"

say() { printf '%s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------------------------
need=()
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
[ -x /usr/bin/time ] || need+=(time)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
      say "could not install some of: ${need[*]}"
  else
    say "missing ${need[*]} (not root: install them yourself)"
  fi
fi
command -v rg >/dev/null 2>&1 || { say "ripgrep is required"; exit 2; }

# --- corpus -------------------------------------------------------------------------------------
stamp="$work/corpus.args"
want="size_mb=$size_mb seed=$seed"
if [ ! -f "$work/truth.json" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "generating the corpus in $corpus ($want)"
  rm -rf "$corpus" "$work/truth.json"
  mkdir -p "$work"
  python3 "$shared/bench/gen_corpus.py" "$corpus" --size-mb "$size_mb" --seed "$seed"
  echo "$want" >"$stamp"
fi

# --- build --------------------------------------------------------------------------------------
say "building offkey (release) in $target"
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release --quiet)
offkey="$target/release/offkey"

# --- machine ------------------------------------------------------------------------------------
busy() { echo "load $(cut -d' ' -f1-3 /proc/loadavg), rustc processes $(pgrep -c rustc || true)"; }
say "machine before: $(nproc) cores, $(busy)"
say "corpus: $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"

now() { date +%s%N; }
run_offkey() { "$offkey" scan "$corpus" --format json -o /dev/null "$@" >/dev/null 2>&1 || [ $? -eq 1 ]; }
run_rg() { rg -uuu -c 'oc_live_[0-9A-Za-z]{38}' "$corpus" >/dev/null 2>&1 || [ $? -eq 1 ]; }

# --- offkey vs rg, alternating, warm cache ------------------------------------------------------
run_offkey; run_rg # warm-up (and page cache)
times="$work/times.txt"
: >"$times"
for i in $(seq "$runs"); do
  t0=$(now); run_offkey; t1=$(now); run_rg; t2=$(now)
  echo "$i $(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 ))" >>"$times"
  say "run $i: offkey $(( (t1 - t0) / 1000000 )) ms, rg $(( (t2 - t1) / 1000000 )) ms"
done

# --- variants, to see where the time goes (5 runs each) -----------------------------------------
variants="$work/variants.txt"
: >"$variants"
for v in "--no-decode" "--threads 1"; do
  for i in 1 2 3 4 5; do
    # shellcheck disable=SC2086
    t0=$(now); run_offkey $v; t1=$(now)
    echo "$v $(( (t1 - t0) / 1000 ))" >>"$variants"
  done
done
for i in 1 2 3 4 5; do
  t0=$(now); rg -uuu -c -j1 'oc_live_[0-9A-Za-z]{38}' "$corpus" >/dev/null 2>&1 || true; t1=$(now)
  echo "rg-j1 $(( (t1 - t0) / 1000 ))" >>"$variants"
done

# --- peak RSS -----------------------------------------------------------------------------------
rss="$work/rss.txt"
: >"$rss"
if [ -x /usr/bin/time ]; then
  for i in 1 2 3; do
    /usr/bin/time -f %M -o "$work/rss.one" "$offkey" scan "$corpus" --format json -o /dev/null \
      >/dev/null 2>&1 || true
    tail -n 1 "$work/rss.one" >>"$rss"
  done
fi

# --- one small file -----------------------------------------------------------------------------
small="$work/small.env"
printf 'DEBUG=1\nDATABASE_URL=postgres://localhost/shop\nOFFSET_API_URL=https://api.offset.example\n' >"$small"
smallt="$work/small.txt"
: >"$smallt"
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 3 --runs 20 --export-json "$work/small.json" \
    "$offkey scan $small" >/dev/null 2>&1 || true
fi
if [ ! -s "$work/small.json" ]; then
  for i in $(seq 23); do
    t0=$(now); "$offkey" scan "$small" >/dev/null 2>&1 || true; t1=$(now)
    [ "$i" -gt 3 ] && echo "$(( (t1 - t0) / 1000 ))" >>"$smallt"
  done
fi

# --- instructions (deterministic where this VM's clocks are not), if valgrind is there ---------
# One thread each, so the counts do not depend on scheduling. INSTRUCTIONS=0 skips it (~1 min).
instr="$work/instructions.txt"
: >"$instr"
if [ "${INSTRUCTIONS:-1}" != 0 ] && command -v valgrind >/dev/null 2>&1; then
  count() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    sed -n 's/.*I *refs: *//p' | tr -d ,; }
  echo "offkey $(count "$offkey" scan "$corpus" --threads 1 --format json -o /dev/null)" >>"$instr"
  echo "rg $(count rg -j1 -uuu -c 'oc_live_[0-9A-Za-z]{38}' "$corpus")" >>"$instr"
fi

# --- recall and precision against truth.json ----------------------------------------------------
report="$work/report.json"
"$offkey" scan "$corpus" --format json -o "$report" 2>"$work/scan.stderr" || true
say "machine after: $(busy)"

python3 - "$work" "$runs" <<'EOF'
import json, statistics, sys
from collections import defaultdict
from pathlib import Path

work, runs = Path(sys.argv[1]), int(sys.argv[2])
rows = [l.split() for l in (work / "times.txt").read_text().split("\n") if l.strip()]
ok = [int(r[1]) / 1000 for r in rows]
rg = [int(r[2]) / 1000 for r in rows]
ratios = [a / b for a, b in zip(ok, rg)]
med = statistics.median
print(f"offkey scan (default options)  median {med(ok):8.1f} ms   (min {min(ok):.1f}, max {max(ok):.1f}, n={len(ok)})")
print(f"rg -uuu -c                     median {med(rg):8.1f} ms   (min {min(rg):.1f}, max {max(rg):.1f}, n={len(rg)})")
print(f"median of paired ratios offkey/rg: {med(ratios):.3f}   (target <= 1.0)")
var = defaultdict(list)
for l in (work / "variants.txt").read_text().splitlines():
    name, us = l.rsplit(" ", 1)
    var[name].append(int(us) / 1000)
for name, xs in var.items():
    print(f"  variant {name:12} median {med(xs):8.1f} ms (n={len(xs)})")
rss = [int(x) for x in (work / "rss.txt").read_text().split()] if (work / "rss.txt").exists() else []
if rss:
    print(f"offkey peak RSS: max {max(rss) / 1024:.1f} MiB, median {med(rss) / 1024:.1f} MiB of {len(rss)} runs  (target <= 32 MB)")
ins = dict(l.split() for l in (work / "instructions.txt").read_text().splitlines() if len(l.split()) == 2) \
    if (work / "instructions.txt").exists() else {}
if "offkey" in ins and "rg" in ins:
    o, r = int(ins["offkey"]), int(ins["rg"])
    print(f"instructions, one thread (cachegrind): offkey {o / 1e6:.0f} M, rg {r / 1e6:.0f} M, ratio {o / r:.2f}")
sj = work / "small.json"
if sj.exists() and sj.stat().st_size:
    t = json.loads(sj.read_text())["results"][0]
    print(f"offkey scan of one small file: median {t['median'] * 1000:.2f} ms (hyperfine -N, 20 runs; target <= 5 ms)")
else:
    xs = [int(x) / 1000 for x in (work / "small.txt").read_text().split()]
    print(f"offkey scan of one small file: median {med(xs):.2f} ms (shell loop, {len(xs)} runs; target <= 5 ms)")

truth = json.loads((work / "truth.json").read_text())
findings = json.loads((work / "report.json").read_text())["findings"]
found = defaultdict(list)
for f in findings:
    found[(f["location"]["path"], f["sha256"])].append(f)
by_truth = {(t["path"], t["sha256"]) for t in truth}
stats = defaultdict(lambda: {"planted": 0, "found": 0, "line_ok": 0, "encodings": defaultdict(int)})
for t in truth:
    key = (t["kind"], t["encoding"], t["expected"])
    s = stats[key]
    s["planted"] += 1
    hits = found.get((t["path"], t["sha256"]), [])
    if hits:
        s["found"] += 1
        s["line_ok"] += any(h["location"]["line"] == t["line"] for h in hits)
        for h in hits:
            s["encodings"][h["encoding"]] += 1
print()
print(f"{'kind':8} {'corpus encoding':17} {'expected':8} {'planted':>7} {'reported':>8}  {'line ok':>7}  offkey encodings")
missed = []
for (kind, enc, exp), s in sorted(stats.items()):
    encs = ", ".join(f"{k}:{v}" for k, v in sorted(s["encodings"].items()))
    print(f"{kind:8} {enc:17} {str(exp):8} {s['planted']:7} {s['found']:8}  {s['line_ok']:7}  {encs}")
    if exp and s["found"] < s["planted"]:
        missed.append((kind, enc))
tp = sum(s["found"] for (k, e, x), s in stats.items() if x)
pos = sum(s["planted"] for (k, e, x), s in stats.items() if x)
fp_decoys = sum(s["found"] for (k, e, x), s in stats.items() if not x)
unplanted = [k for k in found if k not in by_truth]
print()
print(f"recall {tp}/{pos} = {tp / max(pos, 1):.4f}")
print(f"precision {tp}/{tp + fp_decoys + len(unplanted)} = {tp / max(tp + fp_decoys + len(unplanted), 1):.4f}"
      f"  (decoys reported: {fp_decoys}, findings at no planted item: {len(unplanted)})")
truth_ok = {(t["path"], t["sha256"]): t["expected"] for t in truth}
per = defaultdict(lambda: [0, 0])
for k, fs in found.items():
    for f in fs:
        per[f["encoding"]][1] += 1
        per[f["encoding"]][0] += truth_ok.get(k) is True
for enc, (good, n) in sorted(per.items()):
    print(f"  precision of offkey encoding {enc:13} {good}/{n} = {good / n:.4f}")
for kind, enc in missed:
    ex = [t for t in truth if t["kind"] == kind and t["encoding"] == enc and t["expected"]
          and (t["path"], t["sha256"]) not in found][:3]
    for t in ex:
        print(f"  missed {kind}/{enc}: {t['path']}:{t['line']}")
for k in unplanted[:5]:
    print(f"  unplanted finding: {k[0]} {found[k][0]['redacted']} {found[k][0]['encoding']}")
EOF
