# The two commands of the README: `make gate` (the deploy gate on the embedded default:
# SQLite and Celery's filesystem broker, no server) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
# An install is redone when the metadata, the version it reads or the pinned versions change.
INSTALL_DEPS := pyproject.toml taskmaster/__init__.py
# Every package at the version CI ran with (.ci/constraints/*.txt, one per virtualenv): a new
# release changes nothing until someone updates the file on purpose. Through PIP_CONSTRAINT,
# not -c, so that pip's isolated build of this package (setuptools) is pinned too.
PINS := $(CURDIR)/.ci/constraints

.PHONY: gate test soak benchmark benchmark-fleet benchmark-deploys compat compat-django42 compat-django60 lint worker docs newcomer chromium prometheus snapshots

$(BIN)/.installed: $(INSTALL_DEPS) $(PINS)/main.txt
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(PINS)/main.txt $(BIN)/pip install --quiet --upgrade pip
	PIP_CONSTRAINT=$(PINS)/main.txt $(BIN)/pip install --quiet -e ".[dev,docs,recipes]"
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

# Three processes at once (pytest-xdist), each with a broker vhost and database of its own
# (tests/support/lab.py): the tests mostly wait on workers and brokers, not on the CPU.
PARALLEL := -n 3

test: $(BIN)/.installed chromium prometheus
	$(BIN)/pytest $(PARALLEL) $(ARGS)

# The documentation site, as CI builds it: a broken link, page or anchor fails (--strict).
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict $(ARGS)

# The slow tests of the newcomer's path only (they are part of `make test` too).
newcomer: $(BIN)/.installed
	$(BIN)/pytest -m newcomer $(ARGS)

# A fixed seed, so a failure in CI replays here (SOAK_SEED=... make soak draws another).
SOAK_SEED ?= 20261207
soak: $(BIN)/.installed
	SOAK_SEED=$(SOAK_SEED) $(BIN)/pytest -m soak $(ARGS)

# The worker replies the unit tests of the gate's rules read, recorded again from a real worker
# on RabbitMQ with each supported Celery (tests/support/record_snapshots.py): run it when a
# Celery release changes what workers answer, and read the diff.
snapshots: $(BIN)/.installed .venv-dj42/.installed .venv-dj60/.installed
	$(BIN)/python -m tests.support.record_snapshots
	.venv-dj42/bin/python -m tests.support.record_snapshots
	.venv-dj60/bin/python -m tests.support.record_snapshots

# The gate against the naive way, on real brokers and workers (docs/performance.md): about
# half an hour; ARGS=--quick for a taste. Not a test: it asserts nothing and keeps the figures.
benchmark: $(BIN)/.installed
	PIP_CONSTRAINT=$(PINS)/main.txt $(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/gate_benchmark.py $(ARGS)

# The gate against a simulated fleet of 64, 256 and 1,000 workers on RabbitMQ and Redis
# (benchmarks/fleet_benchmark.py, the fleet in benchmarks/fleet/): about 20 minutes;
# ARGS="--quick" for 64 and 256 workers, one run; ARGS="--sizes 1000 --brokers redis --runs 5".
benchmark-fleet: $(BIN)/.installed
	PIP_CONSTRAINT=$(PINS)/main.txt $(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/fleet_benchmark.py $(ARGS)

# Tasks lost per deploy: supervisorctl stop/start, a look at `celery inspect active` first, a
# Kubernetes-style rolling update and the gate, each deployed 20 times on the same prefork
# workers under supervisord and the same seeded load, RabbitMQ and Redis at once
# (benchmarks/deploys.py): about 35 minutes; ARGS=--quick for a taste (about 4 minutes).
benchmark-deploys: $(BIN)/.installed
	PIP_CONSTRAINT=$(PINS)/main.txt $(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/deploys.py $(ARGS)

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will say so"

# Debian's Prometheus (with promtool), Pushgateway and node_exporter: the metrics tests start
# them on loopback ports of their own (tests/support/prometheus.py).
PROMETHEUS_TOOLS := prometheus prometheus-pushgateway prometheus-node-exporter
prometheus:
	@for tool in $(PROMETHEUS_TOOLS) promtool; do command -v $$tool >/dev/null || missing=1; done; \
		[ -z "$$missing" ] || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PROMETHEUS_TOOLS) >/dev/null; } \
		|| echo "Prometheus could not be installed: the metrics tests will say so"

# The suite on the other supported Django and Celery versions, each pair in a virtualenv of its
# own, with the same services as `make test`; .venv has the newest (Django 5.2, Celery 5.7).
# Each Django and each Celery the project claims runs the whole suite once: the two vary
# apart (Celery's differences are the worker's and the registry's, not Django's), so three
# runs cover them where every pair would take six. Left to .venv: the soak, and the README
# followed from a fresh clone (it builds a .venv of its own, so it would test the same thing),
# and the benchmarks' simulated fleet, which stands in for the Celery the benchmarks run (5.7):
# on Celery 5.5 a simulated worker's Redis connection name and its held tasks differ still.
compat: compat-django42 compat-django60

COMPAT_TESTS := -m "not soak and not readme and not recipes and not fleet"

# Django 4.2 LTS and Celery 5.5, the oldest of each, on this machine's python3.
.venv-dj42/.installed: $(INSTALL_DEPS) $(PINS)/django42.txt
	$(PYTHON) -m venv .venv-dj42
	PIP_CONSTRAINT=$(PINS)/django42.txt .venv-dj42/bin/pip install --quiet --upgrade pip
	PIP_CONSTRAINT=$(PINS)/django42.txt .venv-dj42/bin/pip install --quiet \
		"django>=4.2,<5" "celery>=5.5,<5.6" -e ".[dev,docs]"
	touch $@

compat-django42: .venv-dj42/.installed chromium prometheus
	.venv-dj42/bin/pytest $(PARALLEL) $(COMPAT_TESTS) $(ARGS)

# Django 6.0 and Celery 5.6. Django 6.0 needs Python >= 3.12: .ci/python313 builds CPython 3.13
# from Debian's source package once per machine (cached in /var/cache/taskmaster-ci) and
# prints its path.
.venv-dj60/.installed: $(INSTALL_DEPS) $(PINS)/django60.txt .ci/python313
	PY=$$(.ci/python313) && "$$PY" -m venv .venv-dj60
	PIP_CONSTRAINT=$(PINS)/django60.txt .venv-dj60/bin/pip install --quiet --upgrade pip
	PIP_CONSTRAINT=$(PINS)/django60.txt .venv-dj60/bin/pip install --quiet \
		"django>=6.0,<6.1" "celery>=5.6,<5.7" -e ".[dev,docs]"
	touch $@

compat-django60: .venv-dj60/.installed chromium prometheus
	.venv-dj60/bin/pytest $(PARALLEL) $(COMPAT_TESTS) $(ARGS)
