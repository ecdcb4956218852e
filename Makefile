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

.PHONY: install run test lint serve deploy-check screenshots clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: install
	DJANGO_DEBUG=1 $(WITH_DB) bash -c '\
	  $(PY) manage.py migrate --noinput -v0 && \
	  $(PY) manage.py createcachetable && \
	  path=$$($(PY) manage.py seed_demo | tail -n 1) && \
	  echo && echo "  jointbank: http://$(HOST_PORT)$$path" && \
	  echo "  sign in as alice@example.com, bob@example.com or carol@example.com, password demo-pass-2024" && \
	  echo "  (Ctrl-C stops the site and the database)" && echo && \
	  exec $(PY) manage.py runserver $(HOST_PORT)'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	DJANGO_DEBUG=1 $(WITH_DB) bash -c '\
	  $(PY) manage.py makemigrations --check --dry-run && \
	  $(BIN)/pytest $(PYTEST_ARGS)'

# The production stack, locally: gunicorn, DEBUG off, WhiteNoise serving collected static files.
serve: install
	DJANGO_DEBUG=0 DJANGO_SECURE=$${DJANGO_SECURE:-0} \
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')} \
	$(WITH_DB) bash -c '\
	  $(PY) manage.py collectstatic --noinput -v0 && \
	  $(PY) manage.py migrate --noinput -v0 && \
	  $(PY) manage.py createcachetable && \
	  exec $(BIN)/gunicorn jointbank.wsgi --bind $(HOST_PORT) --workers $(WORKERS)'

# Django's deployment checklist with production settings: any warning fails.
deploy-check: install
	DJANGO_DEBUG=0 DJANGO_SECURE=1 \
	DJANGO_SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	$(WITH_DB) $(PY) manage.py check --deploy --fail-level WARNING

# Retakes the README's screenshots (docs/screenshots/) in Chromium.
screenshots: install
	DJANGO_DEBUG=1 JOINTBANK_SCREENSHOTS=docs/screenshots $(WITH_DB) \
	  $(BIN)/pytest -q tests/test_browser_pages.py -k Screenshot

clean:
	-$(PY) -m jointbank.embedded_db stop
	rm -rf .data staticfiles
