# tabpriv task runner. Quick start on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= demo-output

.PHONY: setup demo test lint typecheck pytest test-slow bench bench-quick clean

# The venv is rebuilt only when pyproject.toml changes. torch==2.13.0 is installed first: it is the CPU
# build that lies on this machine's disk; a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@mkdir -p $(OUT)
	$(VENV)/bin/tabpriv synthesize datasets/adult.csv --schema datasets/adult.schema.json --eps 5.1 --target income \
		-o $(OUT)/adult.synthetic.csv --report $(OUT)/adult.privacy.json
	@echo "Synthetic table: $(OUT)/adult.synthetic.csv"
	@echo "Privacy report:  $(OUT)/adult.privacy.json"

lint: $(STAMP)
	$(VENV)/bin/ruff check tabpriv tests benchmarks
	$(VENV)/bin/ruff format --check tabpriv tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy tabpriv benchmarks

pytest: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test: lint typecheck pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

bench: $(STAMP)
	$(PY) -m benchmarks run --config benchmarks/config.toml

bench-quick: $(STAMP)
	$(PY) -m benchmarks run --config benchmarks/config.toml --quick

clean:
	rm -rf $(VENV) $(OUT) .mypy_cache .ruff_cache .pytest_cache .hypothesis
