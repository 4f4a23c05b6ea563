#!/usr/bin/env bash
# Hostile input too big for the tests (issue 19): for each case, offkey scan's exit code, wall
# time and peak RSS (/usr/bin/time -f %M), and whether the key planted next to it was found.
# Target: no crash, no hang (each run is killed after TIMEOUT s), peak RSS < 256 MB. Scans run
# with --max-file-size 8 GiB so the big files are read, not skipped by the default 256 MiB cap.
#
#   bash bench/hostile.sh                 # every case
#   CASES="line2g export500m" bash bench/hostile.sh
#
# Needs: cargo, python3, GNU time (installed from Debian when missing). Inputs go to
# BENCH_DIR (default /tmp/offkey-hostile, ~3.5 GB) and are made once, with fake keys only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DIR="${BENCH_DIR:-/tmp/offkey-hostile}"
TIMEOUT="${TIMEOUT:-600}"
CASES="${CASES:-line2g grow shrink million export500m image30k image30k-ocr}"

if [ ! -x /usr/bin/time ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
# SKIP_BUILD=1: use the release binary already in TARGET.
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --bin offkey >&2)
BIN="$TARGET/release/offkey"
mkdir -p "$DIR"
KEY="$(python3 -c 'import secrets,string,zlib
a=string.digits+string.ascii_uppercase+string.ascii_lowercase
body="".join(secrets.choice(a) for _ in range(32))
c=zlib.crc32(body.encode()); s=""
for _ in range(6): s=a[c%62]+s; c//=62
print("oc_live_"+body+s)')"
SENTINEL_HASH="$(printf '%s' "$KEY" | sha256sum | cut -c1-64)"

echo "| case | exit | wall s | peak RSS MB | sentinel found | warnings |"
echo "|---|---:|---:|---:|---|---:|"
run_case() { # name, dir to scan, extra scan arguments
    local name="$1" target="$2" extra=("${@:3}") out="$DIR/$1.json" err="$DIR/$1.err" t="$DIR/$1.time"
    local code=0
    timeout "$TIMEOUT" /usr/bin/time -f '%e %M' -o "$t" "$BIN" scan "$target" --max-file-size 8589934592 --format json -o "$out" "${extra[@]}" 2>"$err" || code=$?
    local wall rss found warns
    read -r wall rss < <(tail -n1 "$t" 2>/dev/null || echo "- 0")
    found=no; grep -q "$SENTINEL_HASH" "$out" 2>/dev/null && found=yes
    warns=$(grep -c warning "$err" || true)
    [ "$code" = 124 ] && wall="timeout"
    echo "| $name | $code | $wall | $(( ${rss:-0} / 1024 )) | $found | $warns |"
}
sentinel() { mkdir -p "$1"; printf 'OFFSET_KEY=%s\n' "$KEY" > "$1/sentinel.env"; }

for c in $CASES; do
    case "$c" in
    line2g) # one 2 GiB line (no newline), the key at its end
        d="$DIR/line2g"; sentinel "$d"
        [ -f "$d/line.txt" ] || { head -c $((2 * 1024 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$d/line.txt"; printf ' %s' "$KEY" >> "$d/line.txt"; }
        run_case line2g "$d" ;;
    grow) # a file appended to while it is scanned
        d="$DIR/grow"; rm -rf "$d"; sentinel "$d"; head -c $((256 * 1024 * 1024)) /dev/zero | tr '\0' 'b' > "$d/growing.log"
        ( for _ in $(seq 1 200); do head -c $((1024 * 1024)) /dev/zero >> "$d/growing.log"; sleep 0.01; done ) &
        w=$!; run_case grow "$d"; wait "$w" || true ;;
    shrink) # a file truncated while it is scanned
        d="$DIR/shrink"; rm -rf "$d"; sentinel "$d"; head -c $((512 * 1024 * 1024)) /dev/zero | tr '\0' 'c' > "$d/shrinking.log"
        ( sleep 0.2; truncate -s 1M "$d/shrinking.log" ) &
        w=$!; run_case shrink "$d"; wait "$w" || true ;;
    million) # 1,000,000 empty files in 1,000 folders
        d="$DIR/million"; sentinel "$d"
        [ -d "$d/f999" ] || python3 -c "
import os
for i in range(1000):
    p=os.path.join('$d', f'f{i}'); os.makedirs(p, exist_ok=True)
    for j in range(1000): open(os.path.join(p, f'{j}.txt'), 'w').close()"
        run_case million "$d" ;;
    export500m) # a 500 MB ChatGPT export, one key deep inside
        d="$DIR/export500m"; sentinel "$d"
        [ -f "$d/conversations.json" ] || python3 - "$d/conversations.json" "$KEY" <<'PY'
import json, sys
path, key = sys.argv[1], sys.argv[2]
msg = "lorem ipsum dolor sit amet " * 40
with open(path, "w") as f:
    f.write("[")
    n, size = 0, 0
    while size < 500 * 1024 * 1024:
        mapping = {f"m{i}": {"message": {"author": {"role": "user"}, "content": {"parts": [msg]}}} for i in range(20)}
        if n == 5000:
            mapping["k"] = {"message": {"author": {"role": "user"}, "content": {"parts": [f"use {key}"]}}}
        s = json.dumps({"title": f"c{n}", "mapping": mapping})
        f.write(("," if n else "") + s)
        size += len(s); n += 1
    f.write("]")
PY
        run_case export500m "$d" ;;
    image30k) # a 30,000 x 30,000 grayscale PNG (900 Mpixel; ~1 MB compressed)
        d="$DIR/image30k"; sentinel "$d"
        [ -f "$d/huge.png" ] || python3 - "$d/huge.png" <<'PY'
import struct, sys, zlib
w = h = 30000
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
z = zlib.compressobj(9); row = b"\0" + b"\xff" * w; body = []
for _ in range(h): body.append(z.compress(row))
body.append(z.flush())
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))
PY
        run_case image30k "$d" ;;
    image30k-ocr) # the same image with --images: refused by the pixel limit, with a warning
        d="$DIR/image30k"
        [ -f "$d/huge.png" ] || { echo "run the image30k case first" >&2; exit 2; }
        run_case image30k-ocr "$d" --images ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
    esac
done
