# Two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel   # tests/test_install.py builds the wheel with these, offline
	$(PY) -m pip install --quiet -e ".[dev,sbml,progress,fast,cluster,stats,gpu]"
	touch $(STAMP)

run: $(STAMP)
	MPLBACKEND=Agg $(VENV)/bin/moa run all --quick --out results

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q -n auto --durations=15   # one worker per core (pytest-xdist)

bench: $(STAMP)
	$(PY) benchmarks/throughput.py

docs: $(STAMP)
	$(PY) -m moa.report.docgen

clean:
	rm -rf $(VENV) results
