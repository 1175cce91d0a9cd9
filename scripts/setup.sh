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
# The float16 search kernel (src/metamedia/engine/_halfdot.c) is compiled by the
# install below; without a C compiler it is skipped with a warning and exact search
# over float16 rows runs ~5x slower in numpy (tests/engine/test_halfdot.py fails).
# Install gcc when missing and we may, before the install that needs it.
if ! command -v gcc >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends gcc libc6-dev >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends gcc libc6-dev >/dev/null 2>&1; } \
      || echo "setup: could not install gcc with apt-get; the float16 kernel will not be built" >&2
  else
    echo "setup: no C compiler (needs root and apt-get to install gcc); the float16 kernel will not be built" >&2
  fi
fi
pip install --quiet -e ".[dev]"
# The web UI's browser tests drive Debian's chromium through Playwright (test tools
# cannot download browsers here). Install it when missing and we may; otherwise
# those tests fail and say how to install it.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } \
      || echo "setup: could not install chromium with apt-get; the browser tests will fail" >&2
  else
    echo "setup: chromium is not installed (needs root and apt-get); the browser tests will fail" >&2
  fi
fi
# Redis (shared cache, rate limits, pub/sub, streams) is Debian's redis-server; the
# tests start their own on a free loopback port. Install it when missing and we may.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1; } \
      || echo "setup: could not install redis-server with apt-get; the Redis tests will fail" >&2
  else
    echo "setup: redis-server is not installed (needs root and apt-get); the Redis tests will fail" >&2
  fi
fi
