# Two commands for a fresh machine with Python 3.11 and make:
#   make run    create .venv, install, open the demo study
#   make test   create .venv, install with test extras, run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= resources/samples/chest_xray_cr_pa_nema.dcm
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Re-install only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/medkd info $(DEMO)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/medkd bench load

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis demo-output
