# Two set-up commands (see README.md):
#   make run   - install everything into .venv and serve the app on the bundled defaults
#   make test  - install everything into .venv and run the whole test suite (lint + pytest)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test install clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT)

# pytest exits 5 when no test ran; make treats any non-zero exit as a failure.
# Two pytest workers (pytest-xdist), each taking whole test files (module fixtures built once):
# much of the suite waits on Python, subprocesses and the browser, so on CI's 2 cores this took
# the suite from 25.7 to 17.3 min. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/_artifacts
