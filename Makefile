# The two commands of the README. Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint clean softhsm chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: install, initialise data/ with keys and a synthetic county, serve on :8000
demo: $(STAMP)
	$(BIN)/registry init --demo --if-needed
	$(BIN)/registry serve

serve: $(STAMP)
	$(BIN)/registry serve

## make test: install and run the whole suite, on SQLite and on the PostgreSQL server at
## REGISTRY_TEST_POSTGRES_URL (default: the local one; that half skips, saying why, without it)
export REGISTRY_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
test: $(STAMP) softhsm chromium
	$(BIN)/ruff check .
	$(BIN)/pytest -n auto

## SoftHSM2 for the PKCS#11 tests: installed from Debian's packages when missing and this user
## may (root with apt-get); otherwise those tests skip, saying why.
softhsm:
	@command -v softhsm2-util >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null 2>&1; }; } && \
	  echo "installed softhsm2 (for the PKCS#11 tests)"; } || \
	echo "softhsm2 not installed: the PKCS#11 tests will skip"

## Chromium for the browser tests of the web pages (tests/web): Debian's package, installed
## when missing and this user may (root with apt-get); otherwise those tests skip, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null 2>&1; }; } && \
	  echo "installed chromium (for the browser tests)"; } || \
	echo "chromium not installed: the browser tests will skip"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data
