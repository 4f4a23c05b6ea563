#!/usr/bin/env bash
# Every test: installs what the tests need when it is missing (Chromium and ChromeDriver for the
# browser test, LibreOffice for the document redaction test, Microsoft's SARIF Multitool, the
# pre-commit framework), then runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# LibreOffice opens the documents `offkey redact --document` rewrote (headless, no GUI).
command -v soffice >/dev/null 2>&1 || need_apt+=(libreoffice-writer-nogui libreoffice-calc-nogui)
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

tools="$PWD/target/test-tools"
mkdir -p "$tools"
if [ ! -x "$tools/node_modules/.bin/sarif" ] && command -v npm >/dev/null 2>&1; then
  (cd "$tools" && npm install --silent --no-audit --no-fund @microsoft/sarif-multitool-linux >/dev/null 2>&1) || true
fi
if ! command -v pre-commit >/dev/null 2>&1 && command -v pip >/dev/null 2>&1; then
  pip install -q pre-commit >/dev/null 2>&1 || true
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
fi
export OFFKEY_TEST_TOOLS="$tools"

cargo test --all-targets
