#!/usr/bin/env bash
# The whole test suite: lint, formatting, types, layering, then every test.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests bench
ruff format --check src tests bench
mypy
lint-imports
python -m pytest "$@"
