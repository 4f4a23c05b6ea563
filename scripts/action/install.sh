#!/usr/bin/env bash
# The Action's offkey binary: `locate` works out where it lives and the cache key of this
# action's source (steps.bin.outputs.root / key); `install` builds it there with cargo unless
# the cache (or an earlier run on this runner) already holds a build of exactly this source.
#
# OFFKEY_INSTALL_ROOT moves the install root (default ~/.offkey-action); a self-hosted runner
# or a test can point several jobs at one root so that offkey is built once.
set -euo pipefail

src="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}"
out="${GITHUB_OUTPUT:-/dev/stdout}"

case "${1:-}" in
  locate)
    root="${OFFKEY_INSTALL_ROOT:-$HOME/.offkey-action}"
    # Everything cargo builds from, hashed in a stable order: a new version of the action (or
    # an edited copy of it) gets a new key, so a stale cached binary is never used.
    key=$(cd "$src" && find Cargo.toml Cargo.lock src rules -type f -print0 2>/dev/null \
      | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)
    echo "root=$root" >>"$out"
    echo "key=$key" >>"$out"
    ;;
  install)
    root="${OFFKEY_ROOT:?OFFKEY_ROOT is set by the Locate step}"
    key="${OFFKEY_KEY:?OFFKEY_KEY is set by the Locate step}"
    bin="$root/bin/offkey"
    if [ -x "$bin" ] && [ "$(cat "$root/source-key" 2>/dev/null)" = "$key" ] && "$bin" --version >/dev/null 2>&1; then
      echo "offkey: using the build in $root ($("$bin" --version))"
      exit 0
    fi
    command -v cargo >/dev/null 2>&1 || {
      echo "::error title=offkey::cargo is not on PATH; the action builds offkey from source (add a Rust toolchain step, e.g. rustup, before it)"
      exit 1
    }
    echo "offkey: building from $src into $root"
    cargo install --locked --force --path "$src" --root "$root"
    echo "$key" >"$root/source-key"
    "$bin" --version
    ;;
  *)
    echo "usage: install.sh locate|install" >&2
    exit 2
    ;;
esac
