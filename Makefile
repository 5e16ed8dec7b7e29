# napari-medimg: `make demo` and `make test` work on a fresh Debian machine (as root) with nothing installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Xvfb for napari's OpenGL canvas without a screen, plus the X/GL libraries Qt 6's xcb platform loads
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 \
	libfontconfig1 libglib2.0-0
SCREEN := -screen 0 1600x1000x24

.PHONY: test test-slow lint docs demo bench screenshots system-packages venv clean

test: system-packages venv lint
	$(BIN)/python -m pytest -m "not slow"

# the long real-data and training tests (CI runs them after `make test`)
test-slow: system-packages venv
	$(BIN)/python -m pytest -m slow

# ruff lint + format check (the rules are in pyproject.toml); a failure fails CI
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the API reference from the docstrings (Sphinx autodoc + numpydoc) into docs/api/_build/html; warnings are
# errors (tests/test_api_docs.py builds it the same way into a temporary folder, in make test-slow)
docs: venv
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs/api docs/api/_build/html

demo: system-packages venv
	@if [ -n "$$DISPLAY" ]; then \
		$(BIN)/medimg demo; \
	else \
		echo "No display: running the scripted demo under Xvfb into demo-output/"; \
		xvfb-run -a -s "$(SCREEN)" $(BIN)/medimg demo --out demo-output; \
	fi

# refresh the README's screenshot from the scripted demo
screenshots: system-packages venv
	xvfb-run -a -s "$(SCREEN)" $(BIN)/medimg demo --out demo-output
	cp demo-output/napari-medimg-demo.png docs/images/demo.png

bench: system-packages venv
	$(BIN)/pip install -q -c constraints.txt -e ".[test,bench]"
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

system-packages:
	@missing=""; for package in $(APT_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "Missing Debian packages. Run as root:"; \
			echo "  apt-get update && apt-get install -y --no-install-recommends$$missing"; \
			exit 1; \
		fi; \
	fi

venv: $(INSTALLED)

# reinstall only when the package's requirements change (the install is editable: code changes need nothing)
$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	@touch $@

clean:
	rm -rf $(VENV) demo-output build dist src/*.egg-info
