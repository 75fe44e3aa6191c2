# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run run-quick test lab benchmark refresh clean

$(STAMP): requirements.txt requirements-dev.txt requirements-assets.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or call make PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-assets.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)          ## execute every notebook (full parameters) into outputs/executed/
	$(PY) -m mtl_utils.run_notebooks

run-quick: $(STAMP)    ## the same in quick mode
	$(PY) -m mtl_utils.run_notebooks --quick

refresh: $(STAMP)      ## full run written back into notebooks/ (the committed outputs)
	$(PY) -m mtl_utils.run_notebooks --inplace

test: $(STAMP)         ## unit tests + every notebook in quick mode
	$(PY) -m pytest -ra

lab: $(STAMP)          ## JupyterLab with mtl_utils importable
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

benchmark: $(STAMP)
	$(PY) benchmarks/encode_throughput.py

clean:
	rm -rf outputs data/cache
