# workerhub: `make run` starts the server, `make test` checks everything.

CARGO ?= cargo
CLIS_DIR := tests/clis
CLIS_STAMP := $(CLIS_DIR)/node_modules/.installed

.PHONY: run build release test unit integration lint bench clis clean

run: release
	./target/release/workerhub

release:
	$(CARGO) build --release

build:
	$(CARGO) build --all-targets

# The real AI CLIs the integration tests drive offline (needs npm; without it those
# tests say they are skipped).
clis: $(CLIS_STAMP)

$(CLIS_STAMP): $(CLIS_DIR)/package.json $(CLIS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(CLIS_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: tests that need the real AI CLIs will be skipped"; \
	fi

test: lint clis
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	@echo "benchmarks: see docs/BENCHMARKS.md (make bench is completed by the benchmark work)"

clean:
	$(CARGO) clean
