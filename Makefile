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

.PHONY: install demo test bench clean

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

## The test suite (CI runs exactly this through .ci/run).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## cityres vs pyfixest side by side (placebo batch; 9M-row TWFE): minutes, ~8 GiB RAM; writes BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run

clean:
	rm -rf .cityres .pytest_cache
