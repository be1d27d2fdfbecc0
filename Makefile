# lakepulse: `make run` starts everything, `make test` checks everything.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Build outputs may live outside the checkout (CI points this at a shared cache).
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export LAKEPULSE_VENV ?= $(HOME)/.cache/lakepulse/venv
# The browser assets: wasm bundle, CSS and public/, served by the binary.
SITE := $(CURDIR)/target/site
export LEPTOS_SITE_ROOT := $(SITE)
BIN := $(CARGO_TARGET_DIR)/debug/lakepulse
WASM := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/wasm-release/lakepulse.wasm

.PHONY: run test tools test-tools build site server lint unit fuzz e2e fmt clean bench

## Build and start the whole pipeline: embedded broker, demo traffic, lake, dashboard on :3000.
run: tools build
	$(BIN) serve

## Every test: formatting, clippy (both targets), unit and integration tests, browser tests.
test: test-tools build lint unit fuzz e2e

tools:
	scripts/install-tools.sh run

test-tools:
	scripts/install-tools.sh test

build: site server

server:
	cargo build --features ssr --bin lakepulse

site:
	cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate --profile wasm-release
	mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --no-typescript --out-dir $(SITE)/pkg --out-name lakepulse $(WASM)
	# Features as rustc's wasm32 target enables them by default.
	web/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
		--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
		--enable-mutable-globals --enable-reference-types --enable-multivalue \
		$(SITE)/pkg/lakepulse_bg.wasm -o $(SITE)/pkg/lakepulse_bg.wasm
	cp style/main.css $(SITE)/pkg/lakepulse.css
	cp -r public/. $(SITE)/
	cp web/node_modules/echarts/dist/echarts.min.js $(SITE)/

lint:
	cargo fmt --check
	cd fuzz && cargo fmt --check
	cargo clippy --features ssr --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

unit:
	cargo test --features ssr

## Every fuzz target for FUZZ_SECONDS each (briefly in `make test`; longer by hand, e.g.
## `make fuzz FUZZ_SECONDS=3600 FUZZ_SEED=0`). Inputs that crash land in fuzz/artifacts/.
FUZZ_SECONDS ?= 20
# A fixed seed: `make test` explores the same inputs every run, so it fails on a change, not on
# luck; 0 lets libFuzzer pick one, for the long runs that go looking.
FUZZ_SEED ?= 1
fuzz:
	# cargo fuzz passes nightly-only flags (the sanitizer); the machine's toolchain is stable.
	cd fuzz && for target in $$(cargo fuzz list); do \
		mkdir -p corpus/$$target && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -seed=$(FUZZ_SEED) -print_final_stats=0 || exit 1; \
	done

e2e:
	cd end2end && LAKEPULSE_BIN=$(BIN) npx playwright test

## Benchmarks (release build): prints one table; BENCHMARKS.md records it.
## Their progress and errors go to target/bench.log.
bench: tools site
	scripts/install-tools.sh bench
	cargo bench --features ssr --no-run
	@echo "| benchmark | setup | result | vs baseline |"
	@echo "|---|---|---|---|"
	@cargo bench --features ssr --bench decode --bench live --bench sql 2>$(CURDIR)/target/bench.log \
		|| (tail -n 40 $(CURDIR)/target/bench.log; exit 1)

fmt:
	cargo fmt

clean:
	cargo clean
	rm -rf fuzz/corpus fuzz/artifacts
	rm -rf $(SITE)
