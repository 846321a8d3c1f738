"""The benchmark package's entry point run as a path, and which backends the grid gives the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks import runner
from tabpriv.backends import available_backends

from .conftest import REPO, tiny_schema, tiny_table


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


def test_target_goes_to_the_backends_whose_constructor_takes_one() -> None:
    """The runner's docstrings name the backends that get the dataset's target: keep them true."""
    df = tiny_table(50)
    ds = runner.Dataset("tiny", df, df, tiny_schema(), Path("tiny.schema.json"), "flag", {})
    given = {b: runner.public_backend_params(b, ds) for b in available_backends()}
    assert {b for b, p in given.items() if p} == {"aim", "mst", "pgd", "dpsgd-vae", "dp2-vae"}
    assert all(p in ({}, {"target": "flag"}) for p in given.values())
