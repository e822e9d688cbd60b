# One-command workflows; each creates .venv from the pinned requirements if needed.
#   make book     build the website into _build/html (warnings are errors)
#   make test     run every test: unit tests, all notebooks (nbval), website build
#   make unit     run only the fast unit tests (pytest -m unit; under a minute)
#   make lint     ruff over the Python code and the notebooks' code cells
#   make lab      open the course in JupyterLab, on chapter 0
#   make colab    rewrite colab/, the notebooks in plain Markdown for Colab (commit it)
#   make execute  re-execute notebooks in place (authors, after a change)
#   make student  regenerate the committed student versions of the labs (student/)
#   make bench    run the performance benchmarks
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-lock.txt | cksum | cut -d' ' -f1)

# Offline mirror of the data sets, when the repository sits next to one (CI does).
COURSE_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export COURSE_DATA_MIRROR
# The reference machine has 2 cores; outputs are committed from runs with 2 threads.
export COURSE_NUM_THREADS ?= 2
export PYDEVD_DISABLE_FILE_VALIDATION = 1

.PHONY: venv data book lint test unit lab execute student colab bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

data: venv
	$(BIN)/python -m utils.data
	$(BIN)/python -m utils.weights
	$(BIN)/python -m utils.train

book: venv
	$(BIN)/jupyter-book build . --all -W -n --keep-going

lint: venv
	$(BIN)/python -m ruff check .

# Lint first (seconds), then the site (warnings are errors) so that the browser tests
# find it, then every test.
test: data
	$(MAKE) lint
	$(MAKE) book
	$(BIN)/python -m pytest

# Fast feedback while editing utils/: no notebooks, no browser, no slow suites.
unit: data
	$(BIN)/python -m pytest tests -m unit -p no:nbval -o addopts="-p no:cacheprovider -ra"

lab: data
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) \
		chapters/00_getting_started.ipynb

# After changing a notebook (or student/): the plain-Markdown copies that Colab opens
colab: venv
	$(BIN)/python scripts/make_colab.py

execute: data
	$(BIN)/python scripts/execute_notebooks.py $(NOTEBOOKS)

student: venv
	$(BIN)/python scripts/make_student.py

bench: data
	$(BIN)/python benchmarks/conv_bench.py
	$(BIN)/python benchmarks/loader_bench.py
	$(MAKE) book
	$(BIN)/python benchmarks/explorer_bench.py

# Only the site build: never student/ (committed) nor a gradebook (nbgrader_work/).
clean:
	rm -rf _build
