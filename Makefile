# Two commands do all the set-up on a fresh machine:  `make run` (the app) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_REQ ?= -r requirements-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench screenshots

$(STAMP): pyproject.toml requirements-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_REQ) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) main.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	for f in bench/*_bench.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
