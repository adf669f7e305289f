# workerhub: `make run` starts the server, `make test` checks everything.

CARGO ?= cargo
CLIS_DIR := tests/clis
CLIS_STAMP := $(CLIS_DIR)/node_modules/.installed
UI_DIR := tests/ui
UI_STAMP := $(UI_DIR)/node_modules/.installed

.PHONY: run build release test lint bench fuzz clis ui-deps vendor-xterm clean

run: release
	./target/release/workerhub

release:
	$(CARGO) build --release

build:
	$(CARGO) build --workspace --all-targets

# The real AI CLIs the integration tests drive offline (needs npm; without it those
# tests say they are skipped).
clis: $(CLIS_STAMP)

$(CLIS_STAMP): $(CLIS_DIR)/package.json $(CLIS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(CLIS_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: tests that need the real AI CLIs will be skipped"; \
	fi

# playwright-core, which drives the machine's Chromium in the browser tests (without
# npm or Chromium those tests say they are skipped).
ui-deps: $(UI_STAMP)

$(UI_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(UI_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the browser tests will be skipped"; \
	fi

# Refreshes xterm.js in static/vendor/xterm/ from npm at the versions the script pins
# (the files are committed: `make run` needs neither npm nor the network).
vendor-xterm:
	scripts/vendor-xterm.sh

# The benchmark binaries are built first: the bench smoke tests run them, and cargo
# builds only a test's own package's binaries.
test: lint clis ui-deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --all-targets --no-fail-fast

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The benchmark suite (a few minutes): workerhub, websocketd and the limit reference in the
# same run; rewrites docs/BENCHMARKS.md. Never part of `make test`.
bench:
	benches/run.sh

# Property fuzzing of every parser (a million cases and more) and the live fuzzer
# against a running server (docs/SECURITY.md records the figures).
fuzz:
	FUZZ_CASES=250000 $(CARGO) test --release --test fuzz_parsers -- --nocapture
	LIVE_FUZZ_CASES=20000 $(CARGO) test --release --test live_fuzz -- --nocapture

clean:
	$(CARGO) clean
