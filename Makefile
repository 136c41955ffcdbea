# snn-cifar-book: the two commands of the README, and helpers.
#   make book   build the book (executes every chapter) into _build/html
#   make test   pytest on tests/ and nbval on notebooks/ (ci profile), in two processes
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
# The kernels that execute the notebooks must be the venv's Python.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install book browser-test test execute data lab benchmark clean

help:
	@echo "make book     build the book, executing every chapter (SNNLIB_PROFILE, default book)"
	@echo "make browser-test  open every page of _build/html in headless Chromium, offline; screenshots in _build/screens"
	@echo "make test     run pytest and nbval on the notebooks (ci profile; 2 processes, TEST_WORKERS=N to change, 0: one)"
	@echo "make execute  re-execute the notebooks in place at the book profile (commit their outputs)"
	@echo "make data     find or download CIFAR-10 into \$$SNNLIB_DATA_DIR (default ~/.cache/snnlib) and validate it"
	@echo "make lab      open the notebooks in JupyterLab"
	@echo "make benchmark  time snnlib's PyTorch LIF+STDP against Brian2 (minutes; prints a table)"
	@echo "make clean    remove _build"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The chapters' execution times are printed whether or not the build passed.
book: $(STAMP)
	rm -f _build/execution_times.json
	$(BIN)/jupyter-book build . --warningiserror --keep-going; status=$$?; \
		$(PY) book/_ext/execution_times.py _build/execution_times.json; exit $$status
	@echo "The book is in _build/html/index.html"

# Needs Chromium (Debian: apt-get install chromium) and a built book.
browser-test: $(STAMP)
	$(PY) tests/browser/check_book.py _build/html --screens _build/screens

# The tests run in TEST_WORKERS processes (pytest-xdist; 0 or empty: in pytest's own
# process), each test module and each notebook's cells in one of them, in order
# (--dist loadscope). OMP_NUM_THREADS=1 gives each process one thread, except where the code
# sets its own (tier 3's reproducible arithmetic, two): two processes of PyTorch's default
# two threads fight over two cores. On the project's 2-core machine, warm caches, pytest
# took 609 s that way, against 399 s in one process and 314 s in two of one thread.
TEST_WORKERS ?= 2
ifeq ($(filter-out 0,$(strip $(TEST_WORKERS))),)
TEST_RUN := SNNLIB_PROFILE=ci $(PY) -m pytest
else
TEST_RUN := OMP_NUM_THREADS=1 SNNLIB_PROFILE=ci $(PY) -m pytest -n $(strip $(TEST_WORKERS)) \
	--dist loadscope
endif

test: $(STAMP)
	$(TEST_RUN) tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900

execute: $(STAMP)
	SNNLIB_PROFILE=book $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 notebooks/*.ipynb

data: $(STAMP)
	$(PY) -m snnlib data

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

benchmark: $(STAMP)
	$(PY) benchmarks/lif_stdp.py

clean:
	rm -rf _build
