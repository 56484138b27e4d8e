#!/usr/bin/env bash
# The whole test suite, from nothing: set up the venv, lint, run every test (CPU is enough).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" (the fast subset) or -k resume
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${TRANSLATE_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/python" -m pytest -q "$@"
# The prepared GPU check on the CPU (~2 min): its CUDA-only parts skip, naming why, so nothing in
# it first breaks on a lent GPU (scripts/gpu_check.py).
"$VENV/bin/python" scripts/gpu_check.py --device cpu --quick --out "${TMPDIR:-/tmp}/gpucheck"
