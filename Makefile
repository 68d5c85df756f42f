# Every target bootstraps its own virtualenv from pyproject.toml: a clean clone needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make bench DATABASE_URL=...` targets another server; unset, the embedded PostgreSQL is used.
export DATABASE_URL

.PHONY: install bench test seed-bench seed-bench-network validate clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install taskbench with its test dependencies

bench: $(STAMP)  ## seed (if needed) + run the whole matrix + report, on the default profile
	$(BIN)/taskbench bench $(ARGS)

test: $(STAMP)  ## run the test suite against the embedded PostgreSQL
	$(BIN)/python -m pytest $(ARGS)

seed-bench: $(STAMP)  ## the seeder against a raw COPY of the same rows, default profile
	$(BIN)/taskbench seed-bench $(ARGS)

validate: $(STAMP)  ## the harness's client latency against pgbench on the same queries (default profile)
	$(BIN)/taskbench seed --quiet
	$(BIN)/taskbench validate $(ARGS)

seed-bench-network: $(STAMP)  ## seed-bench over loopback TCP, then a unix socket, of one throw-away server (+ server-side generation)
	$(BIN)/python -W ignore tools/loopback_server.py sh -c '\
	  echo "== loopback TCP"; $(BIN)/taskbench seed-bench --server-side --quiet --database-url "$$TCP_URL" $(ARGS) && \
	  echo "== unix socket"; $(BIN)/taskbench seed-bench --server-side --quiet --database-url "$$SOCKET_URL" $(ARGS)'

clean:  ## remove generated reports (keeps the committed baseline) and caches
	rm -rf reports/2* reports/latest .pytest_cache

distclean: clean  ## also remove the virtualenv and the embedded database
	rm -rf $(VENV) .taskbench
