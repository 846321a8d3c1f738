"""Cost of ``aim`` and ``mst`` against the number of columns: the measured basis of ``backend="auto"``.

``backend="auto"`` gives tables of at most :data:`tabpriv.backends.auto.AIM_MAX_COLUMNS` columns to
``aim`` and wider ones to ``mst``. This script measures what that cut-over costs, on Adult's training
rows at ε = 5.1, ``target=income``, seed 0, one fresh process per fit (JAX's programs are per process):

* ``c`` < 15: Adult's first ``c - 1`` schema columns and ``income`` (schema order, a public choice);
* ``c`` = 15: Adult;
* ``c`` > 15: Adult plus ``c - 15`` **copies** of its columns (schema order, ``income`` excluded), each
  copy's values permuted over the rows by a fixed public permutation (seed 1000 + k) so that it is
  independent of the other columns. This is a load test of width, not a quality figure: the copies are
  real values with a public rearrangement, and no quality figure is quoted from them.

Each row: CPU-s of fit + sample (``resource.getrusage``, all threads), wall-s, peak RSS (VmHWM), rounds
(aim), the load average before and after.

    OMP_NUM_THREADS=1 nice python -m benchmarks.bench_aim_columns [--columns 10 15 20] [--systems aim mst]
    python -m benchmarks.bench_aim_columns --child C SYSTEM          (one fit; prints one JSON row)

Writes ``benchmarks/results/aim_columns.json`` and ``aim_columns.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET = "income"


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + ch.ru_utime + ch.ru_stime


def widened(train: Any, schema: Any, c: int) -> tuple[Any, Any]:
    """Adult's training rows and schema cut or widened to ``c`` columns (the rule of the docstring)."""
    import pandas as pd

    from tabpriv.schema import Column, Schema

    names = schema.names
    base = [n for n in names if n != TARGET]
    if c <= len(names):
        keep = [*base[: c - 1], TARGET]
        return train[keep].copy(), schema.select(keep)
    cols = dict(train.items())
    spec = [schema[n].to_dict() for n in names]
    for k in range(c - len(names)):
        src = base[k % len(base)]
        name = f"{src}_copy{k // len(base) + 1}"
        perm = np.random.default_rng(1000 + k).permutation(len(train))  # public, independent of the rows
        cols[name] = train[src].iloc[perm].reset_index(drop=True)
        spec.append({**schema[src].to_dict(), "name": name})
    frame = pd.DataFrame({n: (v.reset_index(drop=True)) for n, v in cols.items()})
    return frame, Schema(tuple(Column.from_dict(d, i) for i, d in enumerate(spec)))


def child(c: int, system: str) -> dict[str, Any]:
    """One fit + sample in this process; the row of figures."""
    import torch

    torch.set_num_threads(1)
    from benchmarks.runner import load_dataset, peak_rss_mb
    from tabpriv import Synthesizer

    spec = tomllib.loads((ROOT / "benchmarks" / "config_marginal_tabpriv.toml").read_text())["datasets"][
        "adult"
    ]
    ds = load_dataset("adult", spec)
    train, schema = widened(ds.train.reset_index(drop=True), ds.schema, c)
    load0 = os.getloadavg()[0]
    synth = Synthesizer(
        backend=system, epsilon=5.1, delta=float(spec.get("delta", 1e-5)), schema=schema, random_state=0,
        backend_params={"target": TARGET},
    )  # fmt: skip
    c0, t0 = _cpu_s(), time.perf_counter()
    synth.fit(train)
    fit_cpu, fit_wall = _cpu_s() - c0, time.perf_counter() - t0
    synth.sample(len(train))
    return {
        "columns": c, "system": system, "rows": len(train),
        "cpu_s": round(_cpu_s() - c0, 1), "fit_cpu_s": round(fit_cpu, 1), "fit_wall_s": round(fit_wall, 1),
        "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "rounds": getattr(synth.backend_, "rounds_run_", None),
        "load_avg_before": round(load0, 2), "load_avg_after": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def _markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# aim and mst cost against the number of columns (Adult, ε = 5.1, target income, seed 0)",
        "",
        f"Command: `{command}`. Columns beyond Adult's 15 are copies of its columns with rows permuted by a",
        "public rule (a width load test, not a quality figure). One fresh process per fit, one torch thread;",
        "the 2-core machine was shared (load averages in the rows): compare rows of the same run only.",
        "",
        "| columns | system | CPU-s fit + sample | fit CPU-s | wall s | peak RSS MB | rounds "
        "| load before→after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['columns']} | {r['system']} | failed: {r['failed'][:80]} | | | | | |")
            continue
        lines.append(
            f"| {r['columns']} | {r['system']} | {r['cpu_s']} | {r['fit_cpu_s']} | {r['wall_s']} | "
            f"{r['peak_rss_mb']} | {r['rounds']} | {r['load_avg_before']}→{r['load_avg_after']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=2, metavar=("C", "SYSTEM"), default=None)
    ap.add_argument("--columns", nargs="*", type=int, default=[10, 15, 20])
    ap.add_argument("--systems", nargs="*", default=["aim", "mst"])
    ap.add_argument("--out", default="aim_columns")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(int(a.child[0]), a.child[1])))
        return 0
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for c in a.columns:
        for system in a.systems:
            cmd = [sys.executable, "-m", "benchmarks.bench_aim_columns", "--child", str(c), system]
            res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                row: dict[str, Any] = {"columns": c, "system": system, "failed": res.stderr[-2000:]}
            else:
                row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            (RESULTS / f"{a.out}.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    command = "python -m benchmarks.bench_aim_columns " + " ".join(sys.argv[1:] if argv is None else argv)
    (RESULTS / f"{a.out}.md").write_text(_markdown(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
