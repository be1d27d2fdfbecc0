#!/usr/bin/env bash
# Installs what lakepulse needs on a fresh machine, skipping whatever is already there.
#   install-tools.sh run    the wasm target, wasm-bindgen-cli, the tansu broker (patched)
#   install-tools.sh bench  the above, plus GoAccess, Java and PySpark (the baselines), Azurite
#   install-tools.sh test   the above, plus Chromium, GoAccess, Playwright, Azurite, the Python
#                           Kafka/Delta/Blob clients and cargo-fuzz
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

# tansu from its published crates with scripts/tansu-snappy.patch applied to tansu-sans-io
# (upstream cannot serve snappy batches back). The build directory names the patch, so an
# unpatched or older install is rebuilt.
TANSU_SRC="$HOME/.cache/lakepulse/tansu-$TANSU_VERSION-$(sha256sum scripts/tansu-snappy.patch | cut -c1-12)"
if ! cargo install --list | grep -qF "tansu v$TANSU_VERSION ($TANSU_SRC/"; then
  say "building the tansu broker $TANSU_VERSION with lakepulse's snappy patch (SQLite storage; 10-50 minutes on 2 cores)"
  rm -rf "$TANSU_SRC"
  mkdir -p "$TANSU_SRC"
  while read -r crate sha256; do
    curl -sSfL -o "$TANSU_SRC/$crate.crate" "https://static.crates.io/crates/$crate/$crate-$TANSU_VERSION.crate"
    echo "$sha256  $TANSU_SRC/$crate.crate" | sha256sum --check --quiet
    tar xzf "$TANSU_SRC/$crate.crate" -C "$TANSU_SRC"
  done <<CRATES
tansu 4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
tansu-sans-io fd549ac4372c99f669499182107bb2e916360d490f5e2bcd54fb5eebc53a78a8
CRATES
  patch --quiet -d "$TANSU_SRC/tansu-sans-io-$TANSU_VERSION" -p1 <scripts/tansu-snappy.patch
  printf '\n[patch.crates-io]\ntansu-sans-io = { path = "../tansu-sans-io-%s" }\n' "$TANSU_VERSION" \
    >>"$TANSU_SRC/tansu-$TANSU_VERSION/Cargo.toml"
  # A path crate has no registry source or checksum in the lock; everything else stays pinned.
  awk '/^name = / { patched = ($0 == "name = \"tansu-sans-io\"") }
       !(patched && /^(source|checksum) = /)' "$TANSU_SRC/tansu-$TANSU_VERSION/Cargo.lock" \
    >"$TANSU_SRC/Cargo.lock" && mv "$TANSU_SRC/Cargo.lock" "$TANSU_SRC/tansu-$TANSU_VERSION/Cargo.lock"
  cargo install --path "$TANSU_SRC/tansu-$TANSU_VERSION" --locked --force --features dynostore,libsql \
    --target-dir "$TANSU_SRC/target"
  rm -rf "$TANSU_SRC/target"
fi

if [ ! -d web/node_modules/echarts ] || [ ! -x web/node_modules/.bin/wasm-opt ] \
  || [ ! -x web/node_modules/.bin/esbuild ] \
  || [ ! -f web/node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then
  say "installing ECharts, esbuild, Swagger UI and binaryen's wasm-opt (npm)"
  (cd web && npm ci --no-audit --no-fund)
fi
# Served from the site root like public/'s other files.
cp -u web/node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css} public/api-docs/

if [ "$what" != run ] && [ ! -x tests/servers/node_modules/.bin/azurite-blob ]; then
  say "installing Azurite (npm), the object store the lake is tested and measured on"
  (cd tests/servers && npm ci --no-audit --no-fund)
fi

if [ "$what" = bench ]; then
  if ! command -v goaccess >/dev/null || ! command -v java >/dev/null; then
    say "installing GoAccess and Java 17 (Debian), the benchmarks' baselines"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq goaccess openjdk-17-jre-headless >/dev/null
  fi
  if ! "$VENV/bin/python" -c 'import pyspark, duckdb, deltalake, azure.storage.blob' 2>/dev/null; then
    say "installing PySpark and DuckDB (the SQL benchmark's baselines), deltalake and azure-storage-blob into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pyspark==3.5.6" "duckdb==2.0.1" \
      "$(grep '^deltalake==' tests/clients/requirements.txt)" "$(grep '^azure-storage-blob==' tests/clients/requirements.txt)"
  fi
  exit 0
fi

[ "$what" = test ] || exit 0

if ! command -v chromium >/dev/null; then
  say "installing Chromium (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v goaccess >/dev/null; then
  say "installing GoAccess (Debian): the oracle the access-log parser is tested against"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq goaccess >/dev/null
fi

if ! command -v nginx >/dev/null || ! command -v systemd-analyze >/dev/null; then
  say "installing nginx and systemd's tools (Debian): contrib/'s proxy and unit are tested with them"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light systemd >/dev/null
fi

if [ ! -x end2end/node_modules/.bin/playwright ]; then
  say "installing Playwright (npm; it uses the system Chromium)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if ! "$VENV/bin/python" -c 'import azure.storage.blob, confluent_kafka, deltalake, kafka, lz4, openapi_core, prometheus_client, snappy, zstandard' 2>/dev/null; then
  say "installing the Python clients (confluent-kafka, kafka-python, deltalake, azure-storage-blob, prometheus-client, openapi-core) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r tests/clients/requirements.txt
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (the decoders' fuzz targets; about a minute)"
  cargo install cargo-fuzz --locked
fi
