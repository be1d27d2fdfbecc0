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

.PHONY: run test tools test-tools build site server lint unit fuzz fuzz-hunt fuzz-targets e2e fmt clean bench install

## Build and start the whole pipeline: embedded broker, demo traffic, lake, dashboard on :3000.
run: tools build
	$(BIN) serve

## Every test: formatting, clippy (both targets), unit and integration tests, browser tests.
## The browser tests run on the server as built for users, after the tests that build it with
## fault injection.
test: test-tools lint unit fuzz build e2e

tools:
	scripts/install-tools.sh run

test-tools:
	scripts/install-tools.sh test

build: site server

server:
	cargo build --features ssr --bin lakepulse

## cargo decides whether the bundle needs building; wasm-bindgen and wasm-opt (half a minute)
## run only when it changed, and web/site.mjs (the content-hashed names, ECharts' modular
## build, Brotli and gzip ahead of time: ten seconds) only when one of its inputs did, so a
## second `make run` on a built tree starts at once.
STAGE := $(CURDIR)/target/site-stage
site:
	cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate --profile wasm-release
	$(MAKE) $(SITE)/bundle.txt
	cp -r public/. $(SITE)/

$(STAGE)/lakepulse_bg.wasm: $(WASM)
	mkdir -p $(STAGE)
	wasm-bindgen --target web --no-typescript --out-dir $(STAGE) --out-name lakepulse $(WASM)
	# Features as rustc's wasm32 target enables them by default.
	web/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
		--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
		--enable-mutable-globals --enable-reference-types --enable-multivalue \
		$(STAGE)/lakepulse_bg.wasm -o $(STAGE)/lakepulse_bg.wasm

$(SITE)/bundle.txt: $(STAGE)/lakepulse_bg.wasm style/main.css web/site.mjs web/echarts.mjs web/package-lock.json
	cp style/main.css $(STAGE)/lakepulse.css
	node web/site.mjs $(STAGE) $(SITE)

lint:
	cargo fmt --check
	cd fuzz && cargo fmt --check
	cargo clippy --features ssr --all-targets -- -D warnings
	cargo clippy --features ssr,fault-injection --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

## With the faults the integration tests inject (src/pipeline/fault.rs). The heaviest tests run
## alone, one at a time, after the rest: the consumer-group tests (three servers, a broker and a
## producer each; beside another test on two cores the group took longer to settle than the
## test waits, stop 22's CI) and the hostile-messages test (100 000 messages through tansu's
## memory engine: 19 s alone, past its 180 s beside the others in stop 23's CI), and the two
## tests with thousands of live-stream clients (beside them, stop 24's live client waited more
## than 30 s for frames the stuck-client test times), and the SQL cluster's tests (a scheduler
## and executors beside the server: the lost-executor test needs its join to outlast a kill).
HEAVY := group:: cluster:: ingest::hostile_messages_are_all_counted_and_dead_lettered \
	live::a_thousand_stuck_sse_clients_at_5000_events_a_second_keep_memory_bounded \
	live::ten_thousand_idle_sse_clients_do_not_starve_a_real_one
unit:
	cargo test --features ssr,fault-injection -- $(addprefix --skip ,$(HEAVY))
	cargo test --features ssr,fault-injection --test integration -- $(HEAVY) --test-threads 1

## Every fuzz target for FUZZ_RUNS inputs each from a fixed seed: `make test` tries the same
## inputs on every machine, however loaded, so it fails on a change and not on luck.
## `make fuzz-hunt` goes looking instead: FUZZ_SECONDS per target from a random seed.
## Inputs that crash land in fuzz/artifacts/.
FUZZ_RUNS ?= 500000
FUZZ_SECONDS ?= 600
# The runs in `make test` start from the seeds alone (a corpus left by earlier runs would
# change what they try); the hunt keeps its corpus in fuzz/corpus.
fuzz:
	rm -rf fuzz/corpus-test
	$(MAKE) fuzz-targets FUZZ_CORPUS=corpus-test FUZZ_BOUND=-runs=$(FUZZ_RUNS) FUZZ_SEED=1

fuzz-hunt:
	$(MAKE) fuzz-targets FUZZ_CORPUS=corpus FUZZ_BOUND=-max_total_time=$(FUZZ_SECONDS) FUZZ_SEED=0

fuzz-targets:
	# cargo fuzz passes nightly-only flags (the sanitizer); the machine's toolchain is stable.
	cd fuzz && for target in $$(cargo fuzz list); do \
		mkdir -p $(FUZZ_CORPUS)/$$target && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$target $(FUZZ_CORPUS)/$$target seeds/$$target -- \
			$(FUZZ_BOUND) -seed=$(FUZZ_SEED) -print_final_stats=0 || exit 1; \
	done

e2e:
	cd end2end && LAKEPULSE_BIN=$(BIN) npx playwright test

## A release build of the server, and the site beside it where the binary looks for it:
## $(PREFIX)/bin/lakepulse and $(PREFIX)/share/lakepulse/site (DESTDIR stages a package).
## contrib/ has a systemd unit and an nginx site for them.
PREFIX ?= /usr/local
install: tools site
	cargo build --release --features ssr --bin lakepulse
	install -D -m 755 $(CARGO_TARGET_DIR)/release/lakepulse $(DESTDIR)$(PREFIX)/bin/lakepulse
	rm -rf $(DESTDIR)$(PREFIX)/share/lakepulse/site
	mkdir -p $(DESTDIR)$(PREFIX)/share/lakepulse
	cp -r $(SITE) $(DESTDIR)$(PREFIX)/share/lakepulse/site

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
	rm -rf fuzz/corpus fuzz/corpus-test fuzz/artifacts
	rm -rf $(SITE) $(STAGE)
