# cityres — the two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)

export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test bench montecarlo clean browser

install: $(STAMP)

# A virtual environment with the pinned versions of constraints.txt (re-made when they change).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

## Sample yearbooks → Prefect refresh → top-10 cities and the baseline DID table.
demo: $(STAMP)
	$(BIN)/cityres demo

## Headless Chromium and a CJK font for the report's browser test (Debian; CI runs as root).
## Installs only what is missing; quiet, idempotent; skipped with a note when not root.
BROWSER_PACKAGES := chromium fonts-noto-cjk
browser:
	@if command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(BROWSER_PACKAGES) (report browser test)"; \
	  log=$$(mktemp); { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES); } >"$$log" 2>&1 \
	    || { cat "$$log"; rm -f "$$log"; exit 1; }; rm -f "$$log"; \
	else echo "note: $(BROWSER_PACKAGES) missing and not root: the report browser test will be skipped"; fi

## The test suite (CI runs exactly this through .ci/run).
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

## Every benchmark section (tests/benchmarks/run.py: placebo, staggered placebo, 10M-row TWFE, three FE, peers,
## firm_scale, refresh, growth): about 2.25 h on 2 cores (placebo 2 min, staggered placebo 5, peers 6-10,
## growth ~25 at its default sizes, 10M TWFE ~2.5, three FE ~55 at 1M and 10M rows (30 of them pyfixest's MAP
## stopped at --multi-fe-timeout 900 s), firm_scale ~18 and ~8 GB of disk, refresh ~5),
## peak ~8 GiB RAM (pyfixest at 10M rows); stores
## tests/benchmarks/results/*.json and writes BENCHMARKS.md. One section: python -m tests.benchmarks.run --only NAME.
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run

## Monte Carlo of the generator's DGP: bias and 95% coverage of the baseline, PSM-DID and 2SLS (not part of `make test`).
montecarlo: $(STAMP)
	$(BIN)/python -m estimation.studies.montecarlo --draws 200 --workers 2 --out MONTECARLO.md

clean:
	rm -rf .cityres .pytest_cache
