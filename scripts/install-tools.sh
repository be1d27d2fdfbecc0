#!/usr/bin/env bash
# Installs what lakepulse needs on a fresh machine, skipping whatever is already there.
#   install-tools.sh run    the wasm target, wasm-bindgen-cli, the tansu broker
#   install-tools.sh bench  the above, plus GoAccess, Java and PySpark (the baselines)
#   install-tools.sh test   the above, plus Chromium, Playwright, the Python Kafka/Delta clients
#                           and cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
export PATH="$HOME/.cargo/bin:$PATH"
VENV=${LAKEPULSE_VENV:-$HOME/.cache/lakepulse/venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

TANSU_VERSION=0.6.0
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print }' Cargo.lock)

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (must match Cargo.lock; several minutes)"
  # Not --locked: its lock pins a webpki-roots the registry mirror does not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "$(tansu --version 2>/dev/null | awk '{print $2}')" != "$TANSU_VERSION" ]; then
  say "installing the tansu broker $TANSU_VERSION (SQLite storage; 10-50 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi

if [ ! -f web/node_modules/echarts/dist/echarts.min.js ] || [ ! -x web/node_modules/.bin/wasm-opt ]; then
  say "installing ECharts and binaryen's wasm-opt (npm)"
  (cd web && npm ci --no-audit --no-fund)
fi

if [ "$what" = bench ]; then
  if ! command -v goaccess >/dev/null || ! command -v java >/dev/null; then
    say "installing GoAccess and Java 17 (Debian), the benchmarks' baselines"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq goaccess openjdk-17-jre-headless >/dev/null
  fi
  if ! "$VENV/bin/python" -c 'import pyspark' 2>/dev/null; then
    say "installing PySpark into $VENV (Spark local, the SQL benchmark's baseline)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pyspark==3.5.6"
  fi
  exit 0
fi

[ "$what" = test ] || exit 0

if ! command -v chromium >/dev/null; then
  say "installing Chromium (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x end2end/node_modules/.bin/playwright ]; then
  say "installing Playwright (npm; it uses the system Chromium)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if ! "$VENV/bin/python" -c 'import confluent_kafka, deltalake, kafka' 2>/dev/null; then
  say "installing the Python clients (confluent-kafka, kafka-python, deltalake) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r tests/clients/requirements.txt
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (the decoders' fuzz targets; about a minute)"
  cargo install cargo-fuzz --locked
fi
