#!/usr/bin/env bash
# Create .venv and install the project with its dev tools. Safe to re-run.
# torch is pinned to the local CPU wheel first, so nothing pulls a GPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  pip install --quiet "torch==2.13.0"
fi
pip install --quiet -e ".[dev]"
