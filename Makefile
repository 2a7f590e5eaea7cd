# Two commands for a newcomer: `make run` (build, publish a table from the bundled sample
# history, show it) and `make test`. Everything else is for developers and operators.

CARGO        ?= cargo
TABLES       ?= tables
HISTORY      ?= data/sample-history.parquet
SEGMENTS     ?= data/segments.toml
COUNTRIES    ?= all
SAMPLE_ROWS  ?= 20000
RELEASE_DIR  := target/release
ETL          := $(RELEASE_DIR)/voucher-etl

.PHONY: run build test lint fmt sample bench bench-etl load-test clean check-toolchain

run: build $(HISTORY)
	$(ETL) run --input $(HISTORY) --output $(TABLES) --countries $(COUNTRIES) --segments $(SEGMENTS)

build: check-toolchain
	$(CARGO) build --release --workspace --bins

test: check-toolchain
	$(CARGO) test --workspace

lint: check-toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The bundled sample is generated, deterministic (seed 42) and small enough to commit.
$(HISTORY): | build
	$(ETL) generate --rows $(SAMPLE_ROWS) --seed 42 --output $(HISTORY) --segments $(SEGMENTS)

sample: build
	$(ETL) generate --rows $(SAMPLE_ROWS) --seed 42 --output $(HISTORY) --segments $(SEGMENTS)

bench: bench-etl load-test

bench-etl:
	bash bench/etl.sh

load-test:
	bash bench/load_test.sh

clean:
	$(CARGO) clean
	rm -rf $(TABLES)

check-toolchain:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "error: cargo not found. Install the Rust toolchain (https://rustup.rs), then run make again." >&2; \
	  exit 1; }
