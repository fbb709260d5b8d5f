# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv (CPU torch) and runs `crossrank demo`
#   make test   creates .venv and runs the whole test suite (Triton kernels in the interpreter)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is a CPU build on these machines; a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo train test lint bench setup

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/crossrank demo

train: $(VENV)/.installed
	$(VENV)/bin/crossrank train

test: $(VENV)/.installed
	TRITON_INTERPRET=1 $(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/crossrank
