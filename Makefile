# Every target does its own set-up: install uv if missing, sync the locked environment.
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
RUN := $(UV) run --frozen

.PHONY: setup run migrate test test-deps lint typecheck

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

migrate: setup
	$(RUN) lookalike db upgrade

run: migrate
	$(RUN) lookalike serve

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup
	$(RUN) mypy

# Debian's chromium and docker-compose, installed when missing (scripts/test-deps).
test-deps:
	@scripts/test-deps

test: lint typecheck test-deps
	$(RUN) pytest
