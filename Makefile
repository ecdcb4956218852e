# jointbank: `make run` serves the demo, `make test` runs everything. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Runs a command with DATABASE_URL set: the given one, or the embedded PostgreSQL, which is
# started first and stopped afterwards if this command started it.
WITH_DB := $(PY) -m jointbank.embedded_db run --
HOST_PORT ?= 127.0.0.1:8000
WORKERS ?= 4
# Inside the `bash -c` of run/serve: `manage.py worker` in the background, sent SIGTERM when
# the shell exits (Ctrl-C, the server stopping), and waited for.
START_WORKER = $(PY) manage.py worker & worker=$$!; \
  trap "kill -TERM $$worker 2>/dev/null; wait $$worker" EXIT

.PHONY: install run test lint serve deploy-check screenshots clean chaos chaos-ci bench bench-levers manage audit

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The site and the background worker side by side; Ctrl-C stops both (the worker after the job
# in hand), then the database.
run: install
	DJANGO_DEBUG=1 $(WITH_DB) bash -c 'set -e; \
	  $(PY) manage.py migrate --noinput -v0; \
	  $(PY) manage.py createcachetable; \
	  path=$$($(PY) manage.py seed_demo | tail -n 1); \
	  echo; echo "  jointbank: http://$(HOST_PORT)$$path"; \
	  echo "  sign in as alice@example.com, bob@example.com or carol@example.com, password demo-pass-2024"; \
	  echo "  (Ctrl-C stops the site, the worker and the database)"; echo; \
	  $(START_WORKER); \
	  $(PY) manage.py runserver $(HOST_PORT)'

# mypy's Django plugin imports the settings: a dummy DATABASE_URL keeps that from starting a
# database (nothing connects to it).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=postgres://localhost/mypy DJANGO_DEBUG=1 $(BIN)/mypy accounts jointbank notifications

test: lint
	@command -v faketime >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime)
	DJANGO_DEBUG=1 $(WITH_DB) bash -c '\
	  $(PY) manage.py makemigrations --check --dry-run && \
	  $(BIN)/pytest $(PYTEST_ARGS)'

# The production stack, locally: gunicorn, DEBUG off, WhiteNoise serving collected static files,
# and one background worker. E-mail is printed on the console unless DJANGO_EMAIL_URL or
# DJANGO_EMAIL_BACKEND says otherwise.
serve: install
	DJANGO_DEBUG=0 DJANGO_SECURE=$${DJANGO_SECURE:-0} \
	$(if $(DJANGO_EMAIL_BACKEND),,DJANGO_EMAIL_URL=$${DJANGO_EMAIL_URL:-console://}) \
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')} \
	$(WITH_DB) bash -c 'set -e; \
	  $(PY) manage.py collectstatic --noinput -v0; \
	  $(PY) manage.py migrate --noinput -v0; \
	  $(PY) manage.py createcachetable; \
	  $(START_WORKER); \
	  $(BIN)/gunicorn jointbank.wsgi --bind $(HOST_PORT) --workers $(WORKERS)'

# Django's deployment checklist with production settings: any warning fails.
# A sample SMTP server stands in for the real one (nothing is sent).
deploy-check: install
	DJANGO_DEBUG=0 DJANGO_SECURE=1 \
	$(if $(DJANGO_EMAIL_BACKEND),,DJANGO_EMAIL_URL=$${DJANGO_EMAIL_URL:-smtp://localhost:587?tls=1}) \
	DJANGO_SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	$(WITH_DB) $(PY) manage.py check --deploy --fail-level WARNING

# Retakes the README's screenshots (docs/screenshots/) in Chromium.
screenshots: install
	DJANGO_DEBUG=1 JOINTBANK_SCREENSHOTS=docs/screenshots $(WITH_DB) \
	  $(BIN)/pytest -q tests/test_browser_pages.py -k Screenshot

# Jepsen-style bank test: two gunicorn instances, clients signed in over HTTP, faults on a
# schedule, post_interest twice at once, then a checker that accounts for every operation.
# Exits non-zero on any lost/duplicated operation or broken invariant. See loadtest/.
CHAOS_SECONDS ?= 60
CHAOS_FAULTS ?= worker-kill,pg-terminate,worker-stop,pg-restart
chaos: install
	$(WITH_DB) $(PY) -m loadtest chaos --seconds $(CHAOS_SECONDS) --faults $(CHAOS_FAULTS)

# The short run CI does after `make test`.
chaos-ci:
	$(MAKE) chaos CHAOS_SECONDS=30 CHAOS_FAULTS=worker-kill,pg-terminate

# One table: hot account locked vs naive vs bare model method vs conditional UPDATE vs pgbench
# (same SQL), 1,000 accounts, page latency at 1k/100k/1M ledger rows, CPU and round trips per
# request, the row-lock window. wrk (Debian) drives HTTP; results go to docs/benchmarks.md.
BENCH_WORKERS ?= 4
BENCH_WORKER_CLASS ?= sync
BENCH_THREADS ?= 4
BENCH_CLIENTS ?= 16
BENCH_SECONDS ?= 20
# BENCH_HOT_ONLY=1: only the hot-account rows, not written to the docs (for quick iterations).
BENCH_HOT_ONLY ?=
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(WITH_DB) $(PY) -m loadtest bench --workers $(BENCH_WORKERS) --clients $(BENCH_CLIENTS) \
	  --worker-class $(BENCH_WORKER_CLASS) --threads $(BENCH_THREADS) \
	  --seconds $(BENCH_SECONDS) --write docs/benchmarks.md $(if $(BENCH_HOT_ONLY),--hot-only)

# Each lever of the hot path against the same baseline in one run (loadtest/levers.py), e.g.
# make bench-levers LEVERS=baseline,sessions-in-redis,sync-2 LEVER_REFS=main
LEVERS ?= baseline,sessions-in-redis,no-health-check,no-chart,no-timeouts-statement,sync-2,sync-3,sync-6,gthread-2x4,gthread-4x2
LEVER_REFS ?=
LEVER_SECONDS ?= 15
LEVER_ROUNDS ?= 2
bench-levers: install
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(WITH_DB) $(PY) -m loadtest levers --variants $(LEVERS) --refs "$(LEVER_REFS)" \
	  --seconds $(LEVER_SECONDS) --rounds $(LEVER_ROUNDS) --clients $(BENCH_CLIENTS)

# Known vulnerabilities in the pinned packages (pip-audit over .venv): fails on any, and on
# packages it could not audit, unless AUDIT_UNREACHABLE_OK=1 (.ci/run), which says so and goes on.
audit: install
	$(PY) .ci/audit.py $(if $(AUDIT_UNREACHABLE_OK),--unreachable-ok)

# Any manage.py command on the embedded PostgreSQL (or DATABASE_URL), with DEBUG on unless
# DJANGO_DEBUG says otherwise: make manage ARGS="createsuperuser"
manage: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(WITH_DB) $(PY) manage.py $(ARGS)

clean:
	-$(PY) -m jointbank.embedded_db stop
	rm -rf .data staticfiles
