"""Cost of the marginal backends against n: the data pass is linear in n, the rest does not grow with n.

``python -m benchmarks.scaling_marginal [--sizes 25000 50000 100000 203723 814892] [--systems mst aim]``

Rows: the 1980 census extract (``census/fertility1980.csv``) resampled with replacement by a seeded
public rule (numpy PCG64, seed 0) to n rows — a load test, not a quality figure. For each n, one fit
of each backend at ε = 5.1, δ = min(1e-5, 0.1/n), seeded, through the Synthesizer; recorded: wall and
CPU seconds of the fit, the backend's own split (``timings_``: the data pass vs select-measure-generate),
and the 1-minute load average. Writes ``benchmarks/results/scaling_marginal.json`` and ``.md``.
Figures are recorded, never asserted (shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

from benchmarks.runner import ROOT, _resolve

SCHEMA = ROOT / "benchmarks" / "schemas" / "fertility1980.schema.json"
PARAMS = {"aim": {"target": "morekids"}, "mst": {"target": "morekids"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[25_000, 50_000, 100_000, 203_723, 814_892])
    p.add_argument("--systems", nargs="*", default=["mst", "aim"])
    p.add_argument("--out", default="benchmarks/results/scaling_marginal")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from tabpriv import Synthesizer
    from tabpriv.schema import Schema

    schema = Schema.load(SCHEMA)
    base = schema.conform(pd.read_csv(_resolve("../shared/datasets/census/fertility1980.csv")))
    rows = []
    for n in a.sizes:
        idx = np.random.default_rng(0).integers(0, len(base), n)
        df = base.iloc[idx].reset_index(drop=True)
        for system in a.systems:
            t0, c0 = time.perf_counter(), time.process_time()
            synth = Synthesizer(
                backend=system, epsilon=5.1, delta=min(1e-5, 0.1 / n), schema=schema, random_state=0,
                backend_params=PARAMS.get(system, {}),
            ).fit(df)  # fmt: skip
            row = {
                "system": system,
                "n": n,
                "fit_wall_s": time.perf_counter() - t0,
                "fit_cpu_s": time.process_time() - c0,
                **getattr(synth.backend_, "timings_", {}),
                "load_avg_1min": os.getloadavg()[0],
                "cpus": os.cpu_count(),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = _resolve(a.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    lines = [
        "Rows: the 1980 census extract resampled with replacement to n (seeded public rule; a load test, "
        "not a quality figure). ε = 5.1, one fit each, shared 2-core CPU (load average recorded).",
        "",
        "| system | n | fit wall s | fit CPU s | data pass s | select-measure-generate s | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['n']:,} | {r['fit_wall_s']:.1f} | {r['fit_cpu_s']:.1f} | "
            f"{r['data_pass_s']:.2f} | {r['select_measure_generate_s']:.1f} | {r['load_avg_1min']:.1f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
