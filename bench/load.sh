#!/usr/bin/env bash
# Key service under load (issue 19): CLIENTS (default 50) concurrent clients for DURATION
# (default 60), each mixing integration calls, lookups, lists, creates, rotations and deletes
# (examples/load.rs), against a release `offkey serve` on loopback with its SQLite store, or on
# PostgreSQL when DATABASE_URL is set. Prints p50/p99 per route, the 5xx count and the lost-write
# check; exits non-zero on any 5xx or lost write.
#
#   bash bench/load.sh                      # SQLite store in a temp dir
#   DATABASE_URL=postgres://... bash bench/load.sh   # a fresh schema in that database
set -euo pipefail

CLIENTS="${CLIENTS:-50}"
SECONDS_RUN="${DURATION:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

# SKIP_BUILD=1: use the release binaries already in TARGET.
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --bin offkey --example load >&2)
BIN="$TARGET/release/offkey"
LOAD="$TARGET/release/examples/load"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

export OFFKEY_CONFIG_DIR="$WORK/config"
unset OFFKEY_SERVER OFFKEY_TOKEN OFFKEY_DATA OFFKEY_DATABASE_URL
STORE=(--data "$WORK/data")
if [ -n "${DATABASE_URL:-}" ]; then
    # A fresh schema per run (psql: Debian's postgresql-client), so runs never mix; the
    # service's connections use it through search_path in the URL's options.
    schema="load_$$_$RANDOM"
    psql "$DATABASE_URL" -qc "CREATE SCHEMA $schema" >/dev/null
    sep="?"; case "$DATABASE_URL" in *\?*) sep="&" ;; esac
    STORE=(--database "${DATABASE_URL}${sep}options=-csearch_path%3D${schema}")
fi
PASSWORD="load-password-$$-$RANDOM"
printf '%s\n' "$PASSWORD" | "$BIN" members add --email load@example.com --name Load \
    --role admin --password-stdin "${STORE[@]}" >/dev/null

OFFKEY_LOG="${OFFKEY_LOG:-warn}" "$BIN" serve --listen 127.0.0.1:0 "${STORE[@]}" 2>"$WORK/serve.log" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL="$(sed -n 's/^offkey serve listening on //p' "$WORK/serve.log" | head -n1)"
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { echo "the server did not start" >&2; cat "$WORK/serve.log" >&2; exit 1; }
# The database URL is not printed: it may hold a password.
if [ -n "${DATABASE_URL:-}" ]; then where="PostgreSQL, schema $schema"; else where="SQLite on $(df -P "$WORK" | awk 'NR==2 {print $1}')"; fi
echo "server: $URL (release build; store: $where)"
echo "machine: $(nproc) cores; load generator on the same machine"

printf '%s\n' "$PASSWORD" | "$BIN" login --server "$URL" --email load@example.com --password-stdin 2>/dev/null
TOKEN="$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$OFFKEY_CONFIG_DIR/session.json")"

status=0
OFFKEY_LOAD_TOKEN="$TOKEN" "$LOAD" "$URL" "$CLIENTS" "$SECONDS_RUN" || status=$?
if grep -q "oc_live_[0-9A-Za-z]\{38\}" "$WORK/serve.log"; then
    echo "a whole key reached the server log" >&2
    status=1
fi
echo "server log: $(grep -c . "$WORK/serve.log" || true) lines at level ${OFFKEY_LOG:-warn}"
exit "$status"
