# Two commands for a fresh machine with Python 3.11 and make:
#   make run    create .venv, install, open the demo study
#   make test   create .venv, install with test extras, run the test suite
#   make package / make package-test   the installable bundle, tarball and .deb (docs/PACKAGING.md)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= resources/samples/chest_xray_cr_pa_nema.dcm

.PHONY: run test bench clean package package-test package-nsis

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

# With a display: the review window on the demo study. Without one: a screenshot of the window
# and the PDF report into demo-output/.
run: $(VENV)/.installed
	$(BIN)/medkd info $(DEMO)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/medkd-desktop $(DEMO); \
	else mkdir -p demo-output && \
	  QT_QPA_PLATFORM=offscreen $(BIN)/medkd-desktop $(DEMO) --screenshot demo-output/window.png && \
	  $(BIN)/medkd analyze $(DEMO) --out demo-output && \
	  echo "No display: wrote demo-output/window.png and demo-output/report.pdf"; \
	fi || echo "(the review needs a bundled teacher/student pair for this study: see trained_models/ and configs/)"

test: $(VENV)/.installed-test
	@command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ] || \
	  echo "note: the PACS tests skip without Orthanc; install it with: sudo apt-get install orthanc orthanc-dicomweb"
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/medkd bench load

# The offline installer (docs/PACKAGING.md): dist/medkd-desktop/ (onedir bundle), the portable
# tarball and the .deb, built in their own venv (build/package-venv); then their smoke test.
package:
	packaging/build.sh

# Run by the system Python with an empty environment: the build venv is out of reach.
package-test:
	env -i PATH=/usr/bin:/bin HOME="$$HOME" $${MEDKD_SHARED_DATA:+MEDKD_SHARED_DATA="$$MEDKD_SHARED_DATA"} \
	  python3 packaging/smoke_test.py $(if $(ONLY),--only $(ONLY))

# The Windows installer script compiles (NSIS, on a dummy payload: the bundle needs a Windows build).
package-nsis:
	packaging/windows/check_nsis.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis demo-output
