# One command to run the bot, one to test it; both build what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Ports, overridable when something else has them: `make run PORT=3980`,
# `make playground PORT=3980 PLAYGROUND_PORT=56151`.
PORT ?= 3978
PLAYGROUND_PORT ?= 56150

.PHONY: run test chat playground bench bench-replicas lint venv manifest clean pdf-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Node tools used by the tests: the Adaptive Cards renderer, the Teams manifest schemas and
# the Microsoft 365 Agents Playground (all pinned in package-lock.json).
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

venv: $(STAMP)

# The Teams bot on its embedded defaults: example profile, SQLite under data/, port 3978 (or
# PORT=), local-development mode (no APP_ID). Talk to it with `make playground` in another terminal.
run: $(STAMP) pdf-deps
	$(BIN)/safeguarding-bot serve --profile profiles/buttsbury-junior.yaml --data data --port $(PORT)

# The Microsoft 365 Agents Playground (Teams, emulated offline) against `make run`'s bot.
# playground.yml matches the example profile: see scripts/playground_config.py.
playground: $(NODE_STAMP) $(STAMP)
	mkdir -p build
	@echo "Agents Playground: open http://127.0.0.1:$(PLAYGROUND_PORT) (needs 'make run PORT=$(PORT)' in another terminal)."
	@echo "You type as Sam Teacher, a member of staff who is not in the DSL team."
	@echo "To act as the DSL (Ann Robinson), start this in a third terminal BEFORE you send a"
	@echo "report; it presses the alert's buttons as her through the Playground:"
	@echo "    $(BIN)/python scripts/playground_dsl.py --url http://127.0.0.1:$(PLAYGROUND_PORT)"
	@echo "(--press acknowledge presses at once; --as 'Jo Colleague' shows a refusal.)"
	TEAMSAPPTESTER_BROWSER=none APPLICATION_INSIGHTS_NO_STATSBEAT=1 \
	APPLICATIONINSIGHTS_CONFIGURATION_CONTENT='{"disableAppInsights":true,"disableStatsbeat":true}' \
	M365_AGENTS_PLAYGROUND_CONFIG_PATH=$(CURDIR)/playground.yml \
	M365_AGENTS_PLAYGROUND_LOGFILE=$(CURDIR)/build/playground.log \
	node node_modules/@microsoft/m365agentsplayground/cli.js start \
	  -e http://127.0.0.1:$(PORT)/api/messages -c msteams -p $(PLAYGROUND_PORT) \
	  --service-url http://127.0.0.1:$(PLAYGROUND_PORT)/_connector --disable-telemetry

chat: $(STAMP)
	$(BIN)/safeguarding-bot chat --profile profiles/buttsbury-junior.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian's Chromium for the real-browser test (tests/acceptance/test_browser.py drives the
# Playground's UI with playwright-core). Installed from the distribution when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium

# What WeasyPrint needs to write the record PDFs (bot/records/pdf.py): Pango, and fonts for
# Latin, Hebrew and Arabic (DejaVu) and emoji (Noto Color Emoji). Installed when missing.
PDF_APT := libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fonts-noto-color-emoji

pdf-deps:
	@dpkg -s $(PDF_APT) >/dev/null 2>&1 || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(PDF_APT); }

# PostgreSQL for the store tests: tests/pgcluster.py starts a throwaway server (initdb into a
# temporary folder, loopback only) and every store contract test runs on it as well as on
# SQLite. Debian's package is installed when no pg_ctl is found; Debian puts the server in
# /usr/lib/postgresql/<version>/bin, which is where the tests look (or on PATH).
PG_CTL := $(firstword $(shell command -v pg_ctl) $(wildcard /usr/lib/postgresql/*/bin/pg_ctl))

.PHONY: postgresql
postgresql:
	@if [ -z "$(PG_CTL)" ]; then \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y postgresql; \
	fi

test: $(STAMP) $(NODE_STAMP) $(CHROMIUM) pdf-deps postgresql
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# What staff and the DSL feel, against the SDK echo bot in the same run (scripts/bench.py).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# One replica vs two on PostgreSQL, and SQLite, against the echo bot (scripts/bench_replicas.py;
# a throwaway PostgreSQL server, which `make test` installs when missing).
bench-replicas: $(STAMP)
	$(BIN)/python scripts/bench_replicas.py

manifest: $(STAMP)
	$(BIN)/safeguarding-bot manifest --app-id $(APP_ID) --out build/app.zip

clean:
	rm -rf $(VENV) node_modules build *.egg-info
