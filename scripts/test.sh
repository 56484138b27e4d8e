#!/usr/bin/env bash
# The whole test suite, from nothing: set up the venv, lint, run every test (CPU is enough).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" (the fast subset) or -k resume
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${TRANSLATE_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/python" -m pytest -q "$@"
