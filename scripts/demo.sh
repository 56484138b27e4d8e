#!/usr/bin/env bash
# The main job on the embedded default, from nothing: build the summer → winter demo set from
# photos that install with the packages, train CycleGAN on it (configs/demo.yaml, a few minutes
# on 2 CPU cores), translate the held-out test photos both ways, show every head (G_AB against
# the known winter transform, the bundled sr-x4 and inpaint models beside bicubic and cv2),
# write report.html.
#   bash scripts/demo.sh          the CycleGAN main job
#   bash scripts/demo.sh mnist    the course's baseline: the MNIST GAN briefly, then a sample grid
# Extra arguments after the mode go to `translate train` (e.g. --set train.epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${TRANSLATE_VENV:-.venv}"
T="$VENV/bin/translate"
mode="${1:-cyclegan}"
[ $# -gt 0 ] && shift
stamp="$(date +%Y%m%d-%H%M%S)"

if [ "$mode" = "mnist" ]; then
  run="runs/gan-demo-$stamp"
  "$T" train gan --out "$run" "$@"
  "$T" sample "$run" --n 64 --out "$run/grid.png"
  echo "sample grid: $run/grid.png"
  exit 0
fi
[ "$mode" = "cyclegan" ] || { echo "usage: scripts/demo.sh [cyclegan|mnist] [train options]" >&2; exit 2; }

data="datasets/demo"
[ -f "$data/prep.json" ] || "$T" data demo --out "$data"
run="runs/demo-$stamp"
out="$run-out"  # outputs go beside the run: `translate infer` refuses a folder inside the model's
"$T" train cyclegan --config configs/demo.yaml --set "data.root=$data" --out "$run" "$@"
"$T" infer "$run" "$data/testA" "$out/a2b" --direction a2b
"$T" infer "$run" "$data/testB" "$out/b2a" --direction b2a
# Every head in the report, each beside its baseline and scored (translate showcase): G_AB
# against the known winter(testA) beside the input as is; the bundled sr-x4 beside bicubic on
# testA shrunk ×4; the bundled inpaint model beside cv2 Telea on seeded holes.
"$T" showcase "$run" "$data/testA" --truth winter --limit 10 --out "$out/showcase/winter"
"$T" showcase sr-x4 "$data/testA" --limit 4 --out "$out/showcase/sr-x4"
"$T" showcase inpaint "$data/testA" --limit 4 --out "$out/showcase/inpaint"
sections=(--section "$out/showcase/winter/section.json"
  --section "$out/showcase/sr-x4/section.json" --section "$out/showcase/inpaint/section.json")
report="$("$T" report "$run" --compare "summer → winter (A → B):$data/testA:$out/a2b" \
  --compare "winter → summer (B → A):$data/testB:$out/b2a" "${sections[@]}")"
echo "report: $report"
