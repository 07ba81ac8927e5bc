# Two entry points: `make run` (set up + serve on the embedded default) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup setup-dev system-deps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime install: API, worker and CLI with TensorFlow.
setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[ml,official]'

# Test install: everything above plus test tools, PyTorch (CPU) for converter tests, Chromium for UI tests.
setup-dev: $(BIN)/python system-deps
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q 'torch==2.13.0'

system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium for the browser tests (sudo apt-get install chromium)"; fi; }

run: setup
	$(BIN)/esrgan models install official
	$(BIN)/esrgan serve --host $(HOST) --port $(PORT)

test: setup-dev
	$(BIN)/python -m pytest tests

bench: setup-dev
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
