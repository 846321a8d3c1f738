#!/usr/bin/env bash
# Create the isolated virtual environment for OpenDP's own marginal synthesizers (AIM, MST).
#
# They ship in the `opendp[mbi]` extra (opendp.extras.mbi), which pins private-pgm's mbi 1.1; that
# clashes with tabpriv's own environment, so it lives in its own venv (.venv-opendp-synth, ignored by
# git via `.venv-*/`) and the benchmark runner drives it in a subprocess
# (benchmarks/peers/opendp_runner.py).
#
# Usage: bash benchmarks/peers/setup_opendp_synth.sh [VENV_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-opendp-synth}"
OPENDP_SPEC="${OPENDP_SPEC:-opendp[mbi]}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$OPENDP_SPEC" pandas
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import opendp.extras.mbi  # noqa: F401
print("opendp", md.version("opendp"), "mbi", md.version("mbi"))
PY
