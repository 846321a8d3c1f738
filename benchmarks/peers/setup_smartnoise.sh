#!/usr/bin/env bash
# Create the isolated virtual environment for the smartnoise-synth peers (MST, AIM).
#
# smartnoise-synth pins opacus 0.14 and an older private-pgm (mbi), which clash with tabpriv's own
# environment, so it lives in its own venv (.venv-smartnoise, ignored by git via `.venv-*/`) and the
# benchmark runner drives it in a subprocess (benchmarks/peers/smartnoise_runner.py).
#
# torch is installed FIRST from the CPU wheel (a bare `pip install torch` would pull a multi-GB CUDA
# build). Usage: bash benchmarks/peers/setup_smartnoise.sh [VENV_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-smartnoise}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# CPU-only torch: use a local CPU wheel where one is on disk, else the PyTorch CPU index.
if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet /opt/wheels/torch-2.13.0+cpu-*.whl
else
  "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" --index-url https://download.pytorch.org/whl/cpu
fi
"$VENV/bin/python" -m pip install --quiet smartnoise-synth
"$VENV/bin/python" - <<'PY'
import snsynth, torch
print("smartnoise-synth OK; torch", torch.__version__)
PY
