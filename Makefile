# Crucible Storage Service. Needs only python3 (>= 3.11), git and make:
# the first target that needs tooling bootstraps uv into .tools/ and the
# project (with its locked dependencies) into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SOURCES := domain application infrastructure interfaces migrations benchmarks tools tests client
PYTEST_ARGS ?= -n 3

.DEFAULT_GOAL := help
.PHONY: help install run migrate lint format typecheck test test-fast clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml client/pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## Create .venv with the locked dependencies and the console script

run: install ## Serve on http://$${HOST:-127.0.0.1}:$${PORT:-8082} (embedded default: SQLite + files under ./data)
	$(BIN)/storage-service serve

migrate: install ## Upgrade DATABASE_URL to the newest schema
	$(BIN)/storage-service migrate

lint: install ## ruff, formatting, mypy --strict, the layer contracts and hadolint
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

test: lint ## Lint, then every test (needs PostgreSQL, Redis and RabbitMQ; CI fails without them)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## Unit and use-case tests only (no server needed)
	$(BIN)/pytest tests/unit tests/use_cases $(PYTEST_ARGS)

.PHONY: bench bench-scale bench-profile bench-soak bench-live bench-export bench-search bench-file bench-crypto bench-fsync bench-compare wrk eatmydata
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

wrk:
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

bench: install wrk ## wrk against the service on PostgreSQL + Redis and its ceilings; writes docs/benchmarks.md
	$(BIN)/python -m benchmarks.http_suite

bench-scale: install ## the running service over HTTP at 100k and 1M evaluations (BENCH_SCALE_SIZES), growth tables; docs/bench-scale.md
	$(BIN)/python -m benchmarks.scale

bench-soak: install wrk ## RSS of the workers under BENCH_SOAK_MINUTES (10) of mixed load, and its slope; docs/benchmarks.md
	$(BIN)/python -m benchmarks.soak

bench-contention: install wrk ## many writers on a few records (Celery STARTED/RETRY, 2 KB PUTs): errors, p99, PostgreSQL's deadlocks; docs/benchmarks.md
	$(BIN)/python -m benchmarks.contention

bench-live: install wrk ## the change feed on two replicas: lag under create load, 1,000 streams' memory, the outbox's cost; docs/bench-live.md
	$(BIN)/python -m benchmarks.live

bench-export: install ## the Parquet warehouse export at BENCH_EXPORT_SIZE (1,000,000) evaluations: full, then after 1,000 changes; docs/bench-export.md
	$(BIN)/python -m benchmarks.export

bench-file: install ## STORAGE_BACKEND=file at BENCH_FILE_SIZE (100,000) evaluations: index build, reads over HTTP, fsck; docs/bench-file.md
	$(BIN)/python -m benchmarks.file_backend

bench-crypto: install ## what ENCRYPTION=on adds to each operation, in-process, beside the same without it; docs/benchmarks.md
	$(BIN)/python -m benchmarks.crypto_cost

bench-fsync: install wrk eatmydata ## update_large and its ceiling with fsync as it is and as a no-op (libeatmydata); docs/benchmarks.md
	$(BIN)/python -m benchmarks.fsync_bound

REV ?= HEAD~1
bench-compare: install wrk ## get_hot of this tree beside REV's (default HEAD~1) in one run, BENCH_ROUNDS (3) rounds; prints only
	$(BIN)/python -m benchmarks.compare_trees $(REV)

eatmydata:
	@[ -e /usr/lib/x86_64-linux-gnu/libeatmydata.so ] || [ -e /usr/lib/aarch64-linux-gnu/libeatmydata.so ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq eatmydata; }

bench-search: install ## text search over HTTP at BENCH_SEARCH_SIZE (1,000,000) evaluations, index sizes and write cost; docs/bench-search.md
	$(BIN)/python -m benchmarks.search

bench-profile: install wrk ## py-spy flame graphs of the service under list, create, get_hot, update_large and health (docs/profiles/)
	$(BIN)/python -m benchmarks.flamegraphs

clean: ## Remove the virtual environments (data/ is kept)
	rm -rf $(VENV) $(TOOLS)
