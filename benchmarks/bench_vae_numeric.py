"""Number heads of the VAE backends: binned (discretised likelihood) vs the regression head.

``numeric_bins`` of ``dp2-vae`` and ``dpsgd-vae`` chooses how a number is modelled: ``0`` is the
first version's regression head (squared error on tanh, sampled as the decoder mean), ``20`` the binned
head (see ``tabpriv/backends/vae/common.py``). This script fits both at one ε on the grid's datasets with the
grid's loaders and evaluation (``benchmarks.runner``), and writes ``results/vae_numeric.{jsonl,md}``.

    .venv/bin/python -m benchmarks.bench_vae_numeric --datasets adult cps1988 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks import runner

RESULTS = runner.ROOT / "benchmarks" / "results"


def run_one(
    ds: runner.Dataset, backend: str, bins: int, eps: float, delta: float, seed: int
) -> dict[str, Any]:
    """Fit, sample and evaluate one (backend, numeric_bins, seed) on ``ds``."""
    import torch

    from tabpriv import Synthesizer

    torch.set_num_threads(1)
    synth = Synthesizer(
        backend=backend,
        epsilon=eps,
        delta=delta,
        schema=ds.schema,
        random_state=seed,
        backend_params={"numeric_bins": bins},
    )
    t0 = time.perf_counter()
    synth.fit(ds.train)
    t1 = time.perf_counter()
    out = synth.sample(len(ds.train))
    t2 = time.perf_counter()
    rep = runner.score(ds, out, seed, 20, synth.privacy_report.to_dict())
    one_way = rep["marginals"]["one_way"]["per_column"]
    numbers = [c.name for c in ds.schema.columns if c.kind != "categorical"]
    return {
        "dataset": ds.name,
        "backend": backend,
        "numeric_bins": bins,
        "epsilon": eps,
        "delta": delta,
        "seed": seed,
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "epsilon_spent": synth.privacy_report.epsilon,
        "tvd_1way_numbers": statistics.fmean(one_way[c] for c in numbers),
        "tvd_1way_per_column": one_way,
        **runner.headline(rep),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sd over seeds per (dataset, backend, numeric_bins)."""
    keys = sorted({(r["dataset"], r["backend"], r["numeric_bins"]) for r in rows})
    cols = [
        ("tvd_1way_numbers", "1-way TVD, numbers ↓"),
        ("tvd_1way", "1-way TVD ↓"),
        ("tvd_2way", "2-way TVD ↓"),
        ("tvd_3way", "3-way TVD ↓"),
        ("lr_auc_tstr", "LR AUC ↑"),
        ("mia_auc", "MIA AUC"),
        ("fit_s", "fit s"),
    ]
    out = [
        "| dataset | backend | numeric_bins | seeds | " + " | ".join(h for _, h in cols) + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    for d, b, k in keys:
        sel = [r for r in rows if (r["dataset"], r["backend"], r["numeric_bins"]) == (d, b, k)]
        cells = [runner._fmt([r.get(key) for r in sel]) for key, _ in cols]  # the grid's own format
        head = "0 (regression)" if k == 0 else str(k)
        out.append(f"| {d} | {b} | {head} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="benchmarks/config.toml")
    ap.add_argument("--datasets", nargs="+", default=["adult", "cps1988"])
    ap.add_argument("--backends", nargs="+", default=["dpsgd-vae", "dp2-vae"])
    ap.add_argument("--bins", nargs="+", type=int, default=[0, 20])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epsilon", type=float, default=5.1)
    ap.add_argument("--name", default="vae_numeric")
    args = ap.parse_args()
    cfg = tomllib.loads(Path(args.config).read_text())
    jsonl = RESULTS / f"{args.name}.jsonl"
    host = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "commit": runner.git_commit(),
    }
    rows: list[dict[str, Any]] = []
    for dname in args.datasets:
        spec = cfg["datasets"][dname]
        ds = runner.load_dataset(dname, spec)
        delta = float(spec.get("delta", cfg["run"]["delta"]))
        for seed in args.seeds:
            for backend in args.backends:
                for bins in args.bins:
                    row = run_one(ds, backend, bins, args.epsilon, delta, seed)
                    row["host"] = host
                    rows.append(row)
                    with jsonl.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    md = RESULTS / f"{args.name}.md"
    md.write_text(
        f"# VAE number heads, ε = {args.epsilon} (device cpu; `{' '.join(sys.argv)}`)\n\n" + table(rows)
    )
    print(md)


if __name__ == "__main__":
    main()
