#!/usr/bin/env bash
# The GitHub Action's logic, kept out of action.yml so it can be tested: works out what to
# scan from the event, runs offkey, writes annotations, a job summary and the step outputs.
# It exits non-zero only when offkey itself failed (exit 2); failing on findings is the next
# step's job, so the SARIF upload still runs.
set -uo pipefail

OFFKEY="${OFFKEY:-offkey}"
path="${INPUT_PATH:-.}"
mode="${INPUT_MODE:-git}"
sarif="${INPUT_SARIF_FILE:-offkey.sarif}"
event="${GITHUB_EVENT_NAME:-}"
event_file="${GITHUB_EVENT_PATH:-}"
out="${GITHUB_OUTPUT:-/dev/null}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
tmp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
json="$tmp/offkey-report-$$.json"
zeros=0000000000000000000000000000000000000000

# Read a field of the event payload (dotted path) with python3.
field() {
  [ -n "$event_file" ] && [ -f "$event_file" ] || return 0
  python3 - "$event_file" "$1" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)
PY
}

have_commit() { git -C "$path" cat-file -e "$1^{commit}" 2>/dev/null; }

args=(scan --format json --output "$json" --sarif-output "$sarif")
if [ "$mode" = git ]; then
  args+=(--git "$path")
  range=""
  case "$event" in
    pull_request|pull_request_target)
      base=$(field pull_request.base.sha); head=$(field pull_request.head.sha)
      if [ -n "$base" ] && [ -n "$head" ] && have_commit "$base" && have_commit "$head"; then
        range="$base..$head"
      else
        echo "offkey: the pull request's base or head commit is not in the clone (use fetch-depth: 0); scanning all history" >&2
      fi
      ;;
    push)
      before=$(field before); after=$(field after)
      if [ -z "$after" ] || ! have_commit "$after"; then
        echo "offkey: the pushed commit is not in the clone; scanning all history" >&2
      elif [ -z "$before" ] || [ "$before" = "$zeros" ]; then
        echo "offkey: first push of this branch; scanning all history reachable from it" >&2
        range="$after"
      elif [ "$before" = "$after" ]; then
        echo "offkey: the push moved nothing (before = after); scanning all history" >&2
      elif ! have_commit "$before"; then
        echo "offkey: the previous head $before is not in the clone (force push or shallow clone); scanning all history reachable from $after" >&2
        range="$after"
      else
        range="$before..$after"
      fi
      ;;
    *) ;;
  esac
  [ -n "$range" ] && args+=(--range "$range")
else
  args+=("$path")
fi
if [ "${INPUT_VERIFY:-false}" = true ] || [ "${INPUT_ROTATE:-false}" = true ]; then
  args+=(--verify)
  [ -n "${INPUT_SERVER:-}" ] && args+=(--server "$INPUT_SERVER")
fi
if [ "${INPUT_ROTATE:-false}" = true ]; then
  args+=(--rotate)
  [ -n "${INPUT_DELIVER:-}" ] && args+=(--deliver "$INPUT_DELIVER")
fi

echo "offkey ${args[*]}" >&2
"$OFFKEY" "${args[@]}"
status=$?

if [ ! -f "$json" ]; then
  echo "offkey: the scan failed (exit $status) before writing a report" >&2
  echo "findings=0" >>"$out"
  echo "sarif-file=" >>"$out"
  exit 2
fi

python3 - "$json" "$summary" "$path" "$mode" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary_path, root, mode = sys.argv[2], sys.argv[3], sys.argv[4]
findings = report["findings"]

def esc(s, prop=False):
    s = str(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s

for f in findings:
    loc = f["location"]
    path = loc["path"].split("!")[0]
    if mode == "git" or root in (".", ""):
        shown = path
    else:
        shown = root.rstrip("/") + "/" + path
    what = "Offset API key" if f["kind"] == "current" else "Possible Offset legacy API key"
    msg = f"{what} {f['redacted']} found"
    if loc.get("commit"):
        msg += f" (introduced in {loc['commit'][:12]})"
    msg += ". Rotate it (offkey rotate, or Settings -> API Keys); deleting the line is not enough."
    level = "error" if f["kind"] == "current" else "warning"
    print(f"::{level} file={esc(shown, True)},line={loc['line']},col={loc['column']},title={esc('offkey: ' + f['rule'], True)}::{esc(msg)}")

with open(summary_path, "a") as s:
    s.write("## offkey\n\n")
    if not findings:
        s.write("No Offset API keys found.\n")
    else:
        s.write(f"**{len(findings)} Offset API key finding(s).** Rotate each exposed key "
                "(`offkey rotate`, or Settings → API Keys); deleting the line is not enough, history keeps it.\n\n")
        s.write("| Key | Where | Commit | Rule | Status |\n|---|---|---|---|---|\n")
        for f in findings:
            loc = f["location"]
            v = f.get("verification") or {}
            status = v.get("status", "not verified")
            s.write(f"| `{f['redacted']}` | `{loc['path']}:{loc['line']}` | {(loc.get('commit') or '')[:12]} | {f['rule']} | {status} |\n")
    s.write("\n")
PY

count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["findings"]))' "$json")
echo "findings=$count" >>"$out"
echo "sarif-file=$sarif" >>"$out"
rm -f "$json"
[ "$status" = 2 ] && exit 2
exit 0
