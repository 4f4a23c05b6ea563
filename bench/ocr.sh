#!/usr/bin/env bash
# OCR figures (bench/OCR.md): screenshots of four styles rendered with fresh fake keys and
# look-alikes, 1920x1080 pixels, 1x and 2x, PNG and JPEG q70, each read by offkey::ocr on one
# core (Tesseract with OMP_THREAD_LIMIT=1, images one after another).
# Usage: bench/ocr.sh [IMAGES_PER_CASE [SEED]] (default 2: 8 images per style; seeded keys). PROFILE=dev for a
# debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
flock /tmp/offkey-cargo.lock cargo build --profile "$profile" --example ocr_bench
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
nice "target/$dir/examples/ocr_bench" "${1:-2}" "${2:-0}"
