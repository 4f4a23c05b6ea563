#!/usr/bin/env bash
# Run fuzz targets until coverage stops growing: 60 s slices (SLICE), each starting from the
# corpus so far, until a slice adds less than 0.5 % to the coverage it started with
# (MIN_GAIN_PERMILLE) or MAX_SLICES slices have run. Prints one Markdown table row per target
# (the table in fuzz/README.md).
#
#   cd fuzz && flock /tmp/offkey-cargo.lock cargo +nightly fuzz build   # AddressSanitizer
#   nice -n 19 bash plateau.sh pack pdf mime ...                        # no target: all of them
#
# New inputs go to work/<target> (not committed); crashes to artifacts/<target>/. The binaries
# are run directly (what `cargo fuzz run` starts), so no cargo runs outside the build lock.
set -uo pipefail
cd "$(dirname "$0")"
SLICE=${SLICE:-60}
MAX_SLICES=${MAX_SLICES:-8}
# A slice that adds less than MIN_GAIN_PERMILLE / 1000 of the coverage it started with ends
# the target's run: 5 = 0.5 %.
MIN_GAIN_PERMILLE=${MIN_GAIN_PERMILLE:-5}
bin_dir=target/x86_64-unknown-linux-gnu/release
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
mkdir -p logs
echo "| target | slices | executions | cov at start | cov at end | ft at end | last slice adds | time s | peak RSS MB | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  if [ ! -x "$bin" ]; then
    echo "| $t | not built: run \`cargo +nightly fuzz build\` first | | | | | | | | |"
    continue
  fi
  mkdir -p "work/$t" "artifacts/$t"
  slices=0 execs=0 cov0="" cov=0 ft=0 rss=0 gain="" crashes="none" t0=$(date +%s)
  while [ "$slices" -lt "$MAX_SLICES" ]; do
    slices=$((slices + 1))
    log="logs/$t.$slices.log"
    "$bin" -artifact_prefix="artifacts/$t/" -max_total_time="$SLICE" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 "work/$t" "corpus/$t" >"$log" 2>&1
    rc=$?
    start=$(grep -a -m1 'INITED' "$log" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    end=$(grep -a ' cov: ' "$log" | tail -n1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    fte=$(grep -a ' ft: ' "$log" | tail -n1 | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
    r=$(sed -n 's/^stat::peak_rss_mb: *\([0-9]*\)/\1/p' "$log" | tail -n1)
    start=${start:-0} end=${end:-0}
    [ -z "$cov0" ] && cov0=$start
    execs=$((execs + ${n:-0}))
    [ "${r:-0}" -gt "$rss" ] && rss=${r:-0}
    cov=$end ft=${fte:-0}
    if [ "$rc" -ne 0 ]; then
      crashes="exit $rc in slice $slices: $(ls -t "artifacts/$t" | head -n1) (log $log)"
      break
    fi
    # Gain of this slice in permille of where it started.
    if [ "$start" -gt 0 ]; then
      g=$(( (end - start) * 1000 / start ))
      gain=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f %%", (e - s) * 100 / s }')
      [ "$g" -lt "$MIN_GAIN_PERMILLE" ] && break
    else
      gain="n/a"
    fi
  done
  secs=$(( $(date +%s) - t0 ))
  echo "| $t | $slices | $execs | $cov0 | $cov | $ft | $gain | $secs | $rss | $crashes |"
done
