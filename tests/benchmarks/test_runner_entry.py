"""The benchmark package's entry point run as a path (a site-packages ``benchmarks`` must not shadow it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_entry_point_run_as_a_path_imports_the_repositorys_runner(tmp_path: Path) -> None:
    """``python <repo>/benchmarks ...`` from another folder: sys.path[0] is benchmarks/ itself, and a
    site-packages ``benchmarks`` (opacus' wheel ships one) must not be imported in the runner's place."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks"), "tables", str(empty)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout == ""  # no rows: no tables written
