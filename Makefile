# Two commands for a new user: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test setup lint typecheck unit clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "openpacs needs Python 3.11 or newer")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

OHIF_STAMP := src/openpacs/web/static/ohif/.openpacs-ohif-version

CONSOLE_STAMP := src/openpacs/web/static/console/index.html
CONSOLE_SOURCES := $(shell find console -path console/node_modules -prune -o -type f -print 2>/dev/null)

setup: $(STAMP) $(OHIF_STAMP) $(CONSOLE_STAMP)

# The OHIF Viewer from the npm registry (no Node.js needed); when the registry cannot be reached
# openpacs still runs and /ohif/ says what to do (the browser tests fail in CI without it).
$(OHIF_STAMP): src/openpacs/web/ohif.py | $(STAMP)
	@$(BIN)/openpacs ohif install --force || \
		echo "OHIF (/ohif/) not installed; openpacs runs without it: see the message above"

# The web console (console/, Vue + Vite) built into the package's static folder, again only when
# its sources change; `npm ci` only when the lock file changed. Without npm, / says what to do.
$(CONSOLE_STAMP): $(CONSOLE_SOURCES)
	@if command -v npm >/dev/null; then \
		if [ ! console/node_modules/.package-lock.json -nt console/package-lock.json ]; then \
			(cd console && npm ci --no-audit --no-fund); fi && \
		(cd console && npm run build); \
	else echo "npm not found: the web console (/) is not built; install Node.js 20.19+ and run make run again"; fi

## Start openpacs with embedded defaults (SQLite + files under ./data, logs under ./logs).
run: $(STAMP) $(OHIF_STAMP) $(CONSOLE_STAMP)
	$(BIN)/openpacs serve

## Lint, type-check and run every test (peer tests skip with a message when a peer is missing).
test: $(STAMP) $(OHIF_STAMP) $(CONSOLE_STAMP) lint typecheck
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench hatch_build.py
	$(BIN)/ruff format --check src tests bench hatch_build.py
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
