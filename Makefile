# The two commands of the README: `make gate` (the deploy gate on the embedded default:
# SQLite and Celery's filesystem broker, no server) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: gate test soak compat lint worker

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

gate: $(BIN)/.installed
	$(BIN)/python manage.py migrate --verbosity 0 --skip-checks
	$(BIN)/python manage.py prepare_deploy $(ARGS)

worker: $(BIN)/.installed
	$(BIN)/celery -A project worker --loglevel info $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy taskmaster project

test: $(BIN)/.installed
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will say so"
	$(BIN)/pytest $(ARGS)

soak: $(BIN)/.installed
	$(BIN)/pytest -m soak $(ARGS)

# Django 4.2 LTS: the tests that need no broker, in a second virtualenv.
compat: $(BIN)/.installed
	$(PYTHON) -m venv .venv-django42
	.venv-django42/bin/pip install --quiet "django>=4.2,<5" -e ".[dev]"
	.venv-django42/bin/pytest tests/test_gate.py tests/test_registry.py tests/test_policy.py \
		tests/test_admin.py tests/test_checks.py tests/test_migrations.py $(ARGS)
