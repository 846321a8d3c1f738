#!/usr/bin/env bash
# Create the isolated virtual environment for the dpmm peers (MST, AIM, PrivBayes).
#
# dpmm 0.1.9 pins numpy 1.26, pandas 2.1 and opendp 0.12, which clash with tabpriv's own environment,
# so it lives in its own venv (.venv-dpmm, ignored by git via `.venv-*/`) and the benchmark runner
# drives it in a subprocess (benchmarks/peers/dpmm_runner.py).
#
# Usage: bash benchmarks/peers/setup_dpmm.sh [VENV_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-dpmm}"
DPMM_SPEC="${DPMM_SPEC:-dpmm==0.1.9}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$DPMM_SPEC"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import dpmm, numpy, pandas
print("dpmm", md.version("dpmm"), "numpy", numpy.__version__, "pandas", pandas.__version__,
      "opendp", md.version("opendp"))
PY
