"""Per-column 1-way TVD of one ``independent`` release (ε = 5.1, seed 0) on Adult and the 1980 census.

Measures the shared integer rule in the ``independent`` backend (one bin per value for integer columns
of at most 100 values). Run it in this tree and in a baseline worktree (``PYTHONPATH=<worktree>``) and
pass both outputs to ``--merge`` to write the comparison::

    python -m benchmarks.bench_independent_levels --out /tmp/new.json
    (cd /work/wt_base && PYTHONPATH=$PWD python -m benchmarks.bench_independent_levels --out /tmp/old.json)
    python -m benchmarks.bench_independent_levels --merge /tmp/old.json /tmp/new.json

The TVDs use the evaluation's levels (:func:`tabpriv.evaluation.discretize.discretize`, 20 bins for
wide numbers) against the rows the release was fitted to. The 1980 census table is a seeded 80% sample
(δ = 10⁻⁷: the default 10⁻⁵ is not below 1/n there).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def measure() -> dict[str, dict[str, float]]:
    """``{table: {column: 1-way TVD}}`` of one seeded ``independent`` release per table."""
    import numpy as np
    import pandas as pd

    from tabpriv import Synthesizer
    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.evaluation.discretize import discretize
    from tabpriv.schema import Schema

    root = Path(__file__).resolve().parent.parent
    out: dict[str, dict[str, float]] = {}
    for name in ("adult", "fertility1980"):
        if name == "adult":
            schema, df = adult_schema(), load_adult("train")
        else:
            schema = Schema.load(root / "benchmarks/schemas/fertility1980.schema.json")
            df = pd.read_csv(root.parent / "shared/datasets/census/fertility1980.csv")
            df = df.sample(frac=0.8, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the seeded-run warning: a research measurement
            synth = Synthesizer(backend="independent", epsilon=5.1, delta=1e-7, schema=schema, random_state=0)
            syn = synth.fit(df).sample(len(df))
        rc, sc = discretize(df, schema, 20), discretize(syn, schema, 20)
        cols: dict[str, float] = {}
        for j, col in enumerate(schema.names):
            k = int(max(rc.codes[:, j].max(), sc.codes[:, j].max())) + 1
            a = np.bincount(rc.codes[:, j], minlength=k) / len(df)
            b = np.bincount(sc.codes[:, j], minlength=k) / len(syn)
            cols[col] = round(float(0.5 * np.abs(a - b).sum()), 4)
        out[name] = cols
    return out


def merge(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A Markdown table of the columns whose TVD moved by more than 0.01, and the largest other move."""
    lines = ["| table | column | before | after |", "|---|---|---|---|"]
    rest = 0.0
    for table, cols in new.items():
        for col, after in cols.items():
            before = old[table][col]
            if abs(after - before) > 0.01:
                lines.append(f"| {table} | `{col}` | {before:.3f} | {after:.3f} |")
            else:
                rest = max(rest, abs(after - before))
    lines.append("")
    lines.append(f"Every other column moved by at most {rest:.4f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure (``--out``) or compare two measurements (``--merge OLD NEW``)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--merge", nargs=2, type=Path, metavar=("OLD", "NEW"))
    args = ap.parse_args()
    if args.merge:
        old, new = (json.loads(p.read_text()) for p in args.merge)
        (RESULTS / "independent_levels.json").write_text(json.dumps({"before": old, "after": new}, indent=1))
        (RESULTS / "independent_levels.md").write_text(
            "# `independent`: per-column 1-way TVD, before and after the shared integer rule\n\n"
            "One release at ε = 5.1, seed 0 (`python -m benchmarks.bench_independent_levels`).\n\n"
            + merge(old, new)
        )
        return
    res = measure()
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
