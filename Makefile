# The two entry points of the README: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests wait on servers and processes more than they compute: more workers than cores pays.
# Each file stays on one worker, in order (some files build on what their earlier tests made), the
# longest files first; tests/scheduling.py says which and lists the files whose tests are spread.
PYTEST_WORKERS ?= -n 4 --dist loadfile --no-loadscope-reorder

.PHONY: demo test lint typecheck unit kube clean

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): installing orkes-provision and its dependencies with pip (a minute or two, once)..." >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check orkes_provision tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# The tests start thousands of `provision` and sandbox processes: with PYTHONDONTWRITEBYTECODE set (as on
# the shared machine), each would compile the package's sources again, about 0.15 s of CPU a process.
# MAKEFLAGS is cleared: under `make test` it names the jobserver of -j2, which the tests that run make do not share.
unit: $(STAMP)
	MAKEFLAGS= MFLAGS= MAKELEVEL= PYTHONDONTWRITEBYTECODE= scripts/with-keyring $(BIN)/pytest -q -rs $(PYTEST_WORKERS) $(PYTEST_ARGS)

# mypy (minutes without its cache, as in a fresh clone) runs beside the tests, which mostly wait.
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck unit

# The Kubernetes control plane tests/kube/test_real_cluster.py runs (cached; without it those tests skip).
kube:
	scripts/build-kube

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
