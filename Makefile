# Tollgate: `make run` starts it, `make test` tests it. Nothing else is needed on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium
PROMETHEUS ?= /usr/bin/prometheus
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: run prod test deps messages chromium prometheus bench bench-smoke

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel error
	touch $@

deps: $(BIN)/.installed node_modules/.installed messages

messages: $(BIN)/.installed
	@if ls locale/*/LC_MESSAGES/django.po >/dev/null 2>&1; then $(BIN)/python manage.py compilemessages --verbosity 0 --ignore=.venv --ignore=node_modules; fi

# Prometheus' multiprocess files describe the processes of one start: a new start begins with none.
METRICS_DIR = $${PROMETHEUS_MULTIPROC_DIR:-$${TOLLGATE_DATA_DIR:-data}/metrics}

# Embedded default: SQLite, no Redis, Celery on a filesystem broker. Set DATABASE_URL/REDIS_URL to use servers.
run: deps
	rm -rf "$(METRICS_DIR)"
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py tollgate_demo
	$(BIN)/honcho -f Procfile.dev start

# Production processes (README "Production"): needs DJANGO_DEBUG=false and the settings it lists.
prod: deps
	rm -rf "$(METRICS_DIR)"
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/honcho -f Procfile start

# Debian's chromium for the browser tests (Playwright's own browser download cannot work offline), and a CJK
# font so that screenshots of the Chinese pages show characters, not boxes.
CJK_FONT_PACKAGE ?= fonts-noto-cjk
chromium:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null))) || echo "warning: no $(CHROMIUM); browser tests will fail"
	@fc-list :lang=zh 2>/dev/null | grep -q . || (command -v apt-get >/dev/null && (apt-get install -y -q $(CJK_FONT_PACKAGE) >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $(CJK_FONT_PACKAGE) >/dev/null))) || echo "warning: no CJK font; Chinese screenshots will show boxes"

# Debian's Prometheus server, which scrapes /metrics in tests/relay/test_prometheus_scrape.py (without it that
# test reads the scrapes with prometheus-client's parser instead). apt-get does not start the service here.
prometheus:
	@test -x $(PROMETHEUS) || (command -v apt-get >/dev/null && (apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null))) || echo "warning: no $(PROMETHEUS); the scrape test parses /metrics itself"

# The architecture contracts (.importlinter), parallel workers, then the few tests that disturb shared
# services (marked serial) on their own.
TEST_WORKERS ?= 2
test: deps chromium prometheus
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: deps
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-smoke: deps
	$(BIN)/python benchmarks/run.py --smoke
