# One-command set-up for a fresh Debian / Raspberry Pi OS machine with Python 3.11.
#   make demo   set up, then run the virtual store
#   make test   set up, then run every test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# two processes, a test file's tests on one of them (module fixtures such as brokers are shared
# within a file); most tests wait on brokers, processes and timers, so two halve the wall time
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: all setup venv mosquitto chromium postgresql test demo clean

all: test

setup: venv mosquitto chromium postgresql

# pip installs only when the requirement files changed since the last install.
venv: $(STAMP)
$(STAMP): pyproject.toml gateway/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install python3.11 and python3.11-venv" >&2; exit 1; }
# a fresh Debian has python3.11 without venv/ensurepip (package python3.11-venv)
	@if ! test -x $(PY) && ! $(PYTHON) -c "import ensurepip, venv" 2>/dev/null; then \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: $(PYTHON) has no venv; install python3.11-venv" >&2; exit 1; fi; \
	echo "installing $(notdir $(PYTHON))-venv with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(notdir $(PYTHON))-venv >/dev/null; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create $(VENV); install python3.11-venv" >&2; exit 1; }
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ./gateway -e '.[model]'
	@touch $(STAMP)

# Mosquitto comes from Debian. Install it when missing and we may (root or sudo).
mosquitto:
	@if command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: Mosquitto is missing. Install it: sudo apt-get install mosquitto" >&2; exit 1; fi; \
	echo "installing mosquitto with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto >/dev/null

# Headless Chromium and its driver from Debian, for the web service's browser tests.
chromium:
	@if test -x /usr/bin/chromium && test -x /usr/bin/chromedriver; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: Chromium is missing. Install it: sudo apt-get install chromium chromium-driver" >&2; exit 1; fi; \
	echo "installing chromium and chromium-driver with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null

# PostgreSQL from Debian, for cart-fleet's head-office ledger (the tests start
# their own throwaway cluster with initdb / pg_ctl: tools/cart_testing/postgres.py).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "error: PostgreSQL is missing. Install it: sudo apt-get install postgresql" >&2; exit 1; fi; \
	echo "installing postgresql with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null

# pytest exits 5 when a selection collects nothing; that is not a failure here.
test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

demo: setup
	$(VENV)/bin/cart-sim demo

clean:
	rm -rf $(VENV) .pytest_cache
