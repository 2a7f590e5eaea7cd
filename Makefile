# Two commands for a newcomer: `make run` (build, publish a table from the bundled sample
# history, show it) and `make test` (the Rust test suites). `make check` runs everything CI
# runs (.ci/run calls the same targets, one step each). The rest is for developers and
# operators.

CARGO        ?= cargo
TABLES       ?= tables
HISTORY      ?= data/sample-history.parquet
SEGMENTS     ?= data/segments.toml
COUNTRIES    ?= all
SAMPLE_ROWS  ?= 20000
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR  := $(TARGET_DIR)/release
ETL          := $(RELEASE_DIR)/voucher-etl
API          := $(RELEASE_DIR)/voucher-api
API_PORT     ?= 8000
VOUCHER_BODY := {"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00", "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"}

# Clippy runs inside the test build: clippy-driver wraps rustc for this workspace's crates
# only, so `make test` and `make clippy` compile the dependencies once between them (the
# dependencies' artifacts do not depend on the wrapper), where `cargo clippy` would compile
# every dependency a second time, in check mode. `make test` prints clippy's warnings;
# `make clippy` fails on them. Without clippy installed, `make test` builds with rustc alone.
CLIPPY_DRIVER := $(shell clippy-driver --version >/dev/null 2>&1 && echo clippy-driver)
CARGO_LINTED  := $(if $(CLIPPY_DRIVER),RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) )$(CARGO)

# The binaries `make test` built: `make check` hands them to the scripts that run the real
# programs, which would otherwise build their own (with other features, so again).
TEST_BIN_DIR := $(TARGET_DIR)/debug

.PHONY: run build test check check-steps lint fmt fmt-check clippy sample bench bench-etl bench-score bench-postgres bench-doors bench-events bench-customers \
        load-test grpc-test page-test s3-test interop-test postgres-test events-test monitoring-test api-fuzz \
        notebook notebook-generated notebook-test clean check-toolchain docker-build docker_api compose-up \
        compose-test kube-play-test kind-up kind-down load-test-kind deploy-check deploy-test image-check

# Publishes a table from the sample history, then serves it until Ctrl-C.
run: build $(HISTORY)
	$(ETL) run --input $(HISTORY) --output $(TABLES) --countries $(COUNTRIES) --segments $(SEGMENTS)
	@echo
	@echo "voucher-api is starting. Open the page: http://127.0.0.1:$(API_PORT)/ (API docs: http://127.0.0.1:$(API_PORT)/docs/)"
	@echo "Or try, from another terminal:"
	@echo "  curl -s -H 'Content-Type: application/json' -d '$(VOUCHER_BODY)' http://127.0.0.1:$(API_PORT)/api/v1/voucher"
	@echo "Stop it with Ctrl-C."
	@echo
	$(API) --tables-dir $(TABLES) --port $(API_PORT)

build: check-toolchain
	$(CARGO) build --release -p voucher-etl -p voucher-api

# The Rust test suites: unit tests, each crate's integration tests (the API in-process on its
# real protocols, the ETL's real binary) and the end-to-end tests of the binaries.
test: check-toolchain
	$(CARGO_LINTED) test --workspace

# Everything CI runs, in order: the quick check first, then the build that the Python,
# browser, S3, Kafka, image and notebook tests reuse. .ci/run runs these same targets, one
# step each (`make check-steps` lists them). The image check needs root (buildah); the
# installs need apt-get and PyPI. Run serially (no -j): the order matters.
CHECK_STEPS := fmt-check test clippy deploy-check image-check compose-test api-fuzz grpc-test page-test \
               s3-test interop-test postgres-test events-test monitoring-test notebook-generated \
               notebook-test deploy-test
check: export VOUCHER_ETL_BIN ?= $(TEST_BIN_DIR)/voucher-etl
check: export VOUCHER_API_BIN ?= $(TEST_BIN_DIR)/voucher-api
check: export VOUCHER_EVENTS_BIN ?= $(TEST_BIN_DIR)/voucher-events
check: $(CHECK_STEPS)
	@echo "make check: everything CI runs passed"

check-steps:
	@echo $(CHECK_STEPS)

lint: fmt-check clippy

fmt-check: check-toolchain
	$(CARGO) fmt --all -- --check

# Every target (libraries, binaries, tests, examples) of every crate, with warnings denied,
# as `cargo clippy --workspace --all-targets -- -D warnings`; after `make test`, only replays
# the warnings cargo kept.
CLIPPY_LOG := $(TARGET_DIR)/clippy.log
clippy: check-toolchain
	@[ -n "$(CLIPPY_DRIVER)" ] || { echo "error: clippy is not installed; run: rustup component add clippy" >&2; exit 1; }
	@mkdir -p $(TARGET_DIR)
	bash -o pipefail -c '$(CARGO_LINTED) test --workspace --all-targets --no-run 2>&1 | tee $(CLIPPY_LOG)'
	@! grep -q '^warning' $(CLIPPY_LOG) || { echo "error: clippy: the warnings above are denied" >&2; exit 1; }

fmt:
	$(CARGO) fmt --all

# The bundled sample is generated, deterministic (seed 42) and small enough to commit.
$(HISTORY): | build
	$(ETL) generate --rows $(SAMPLE_ROWS) --seed 42 --output $(HISTORY) --segments $(SEGMENTS)

sample: build
	$(ETL) generate --rows $(SAMPLE_ROWS) --seed 42 --output $(HISTORY) --segments $(SEGMENTS)

bench: bench-etl bench-score load-test bench-doors bench-events

# voucher-etl run against DuckDB SQL, for Peru and every country (bench/etl.sh).
bench-etl:
	bash bench/etl.sh

# voucher-etl score on 10M generated customers against DuckDB's range join (bench/score.sh).
bench-score:
	bash bench/score.sh

load-test:
	bash bench/load_test.sh

# voucher-etl reading 28.6M rows from PostgreSQL beside psql's binary COPY and connectorx.
bench-postgres:
	bash bench/postgres.sh

# Requests/s through the NDJSON and gRPC streams against the single route.
bench-doors:
	bash bench/doors.sh

# Requests by customer id (a throwaway PostgreSQL with 1M customers) beside full requests.
bench-customers:
	bash bench/customers.sh

# Events per second through voucher-events on a local broker (tansu), beside a plain consumer.
bench-events:
	bash bench/events.sh

# The page at / in a real headless browser (chromium via selenium; installs them when missing).
page-test:
	bash api/tests/page_test.sh

# The gRPC door from Python (grpcio, in a venv it creates), against the real binary.
grpc-test:
	bash api/tests/grpc_python.sh

# voucher-events on a real Kafka-protocol broker (tansu, built once; confluent-kafka in a venv).
events-test:
	bash events/tests/events_test.sh

# The alert rules and the dashboard of k8s/monitoring/: promtool's checks and unit tests, then a
# real Prometheus on 127.0.0.1 scraping the real binaries (Debian's prometheus, installed when
# missing; the events test's tansu broker when it is built).
monitoring-test:
	bash k8s/monitoring/test/monitoring_test.sh

# voucher-etl reading s3:// history from a real S3-compatible server (moto, in a venv it creates).
s3-test:
	bash etl/tests/s3_test.sh

# voucher-etl on histories and campaign lists from pyarrow, DuckDB, polars and CSV writers, in
# every form the matrix names (pyarrow, duckdb and polars in a venv it creates).
interop-test:
	bash etl/tests/interop_test.sh

# voucher-etl reading history from a real PostgreSQL (Debian's, started on 127.0.0.1 by the
# script, installed when missing), voucher-postgres against it, and voucher-api's requests by
# customer id at every door (then, alone, the server stopped and started under a running API).
# Built as `make test` builds (the same rustc wrapper), so that nothing recompiles after it.
postgres-test:
	$(if $(CLIPPY_DRIVER),RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) )bash etl/tests/postgres_test.sh

# Fuzzes voucher-api against its own OpenAPI document (schemathesis, in a venv it creates).
api-fuzz:
	bash api/tests/schemathesis.sh

# Executes notebooks/voucher_exploration.ipynb on the sample and tables/ (run `make run` first);
# writes notebooks/output/*.png and an executed copy.
notebook:
	VOUCHER_HISTORY=$(HISTORY) VOUCHER_TABLES_DIR=$(TABLES) bash notebooks/run.sh

# The notebook on history it generates itself (what CI runs), and the runner's own failure tests.
notebook-generated:
	$(if $(VOUCHER_ETL_BIN),VOUCHER_ETL=$(VOUCHER_ETL_BIN) )bash notebooks/run.sh --generated

notebook-test:
	$(if $(VOUCHER_ETL_BIN),VOUCHER_ETL=$(VOUCHER_ETL_BIN) )bash notebooks/test_run.sh

# Deployment: images, compose, kind (need Docker or podman / kind), and the checks CI runs.
IMAGE_TAG ?= 0.1.0
# docker where its daemon answers, else podman (README, "Docker and podman").
CONTAINER_ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)

docker-build:
	$(CONTAINER_ENGINE) build -f Dockerfile.api -t voucher-api:$(IMAGE_TAG) .
	$(CONTAINER_ENGINE) build -f Dockerfile.etl -t voucher-etl:$(IMAGE_TAG) .
	$(CONTAINER_ENGINE) build -f Dockerfile.events -t voucher-events:$(IMAGE_TAG) .

# The first users' flow: build the images, publish the sample's table, serve it on
# 127.0.0.1:$(API_PORT) and print the curl to try, until Ctrl-C. NO_BUILD=1 runs images already
# built (here: make image-check, then make docker_api NO_BUILD=1 IMAGE_TAG=check).
docker_api: $(if $(NO_BUILD),,docker-build)
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) IMAGE_TAG=$(IMAGE_TAG) API_PORT=$(API_PORT) bash deploy/docker_api.sh

# docker compose, or podman-compose (pinned, installed by deploy/compose_test.sh) with this
# machine's containers.conf.
compose-up:
ifeq ($(CONTAINER_ENGINE),docker)
	IMAGE_TAG=$(IMAGE_TAG) docker compose up --build --wait
	@echo "voucher-api on http://localhost:8000 (docs at /docs); stop with: docker compose down"
else
	IMAGE_TAG=$(IMAGE_TAG) bash deploy/compose_test.sh --up
endif

# docker-compose.yml on podman-compose, then k8s/ on podman kube play, on the images of
# `make image-check` (as root; installs podman, runc, hey and its venvs).
compose-test:
	bash deploy/compose_test.sh
	bash deploy/kube_play_test.sh

kube-play-test:
	bash deploy/kube_play_test.sh

kind-up:
	TAG=$(IMAGE_TAG) bash kind/up.sh

kind-down:
	bash kind/down.sh

load-test-kind:
	bash kind/load-test.sh

deploy-check:
	bash deploy/check.sh

deploy-test:
	bash deploy/test_checks.sh

# Builds and runs the images with buildah on stand-in base images (needs root).
image-check:
	bash deploy/build_images.sh

clean:
	$(CARGO) clean
	rm -rf $(TABLES) notebooks/output

# What building needs besides cargo: some dependencies compile C and C++ code (ring, zstd,
# lz4, zlib and blake3 in C; librdkafka, through its configure script and make, in C and C++).
check-toolchain:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "error: cargo not found. Install the Rust toolchain (https://rustup.rs), then run make again." >&2; \
	  exit 1; }
	@missing=; for tool in cc c++ ar; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "error: no C/C++ toolchain (not found:$$missing). Some dependencies compile C and C++ code" >&2; \
	  echo "(ring, zstd, lz4, zlib, blake3; librdkafka, the Kafka client). On Debian or Ubuntu:" >&2; \
	  echo "  sudo apt-get install build-essential" >&2; \
	  exit 1; fi
