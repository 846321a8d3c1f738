"""Scaling curve: fit + sample time and peak memory per backend on the 1980 census table.

``python -m benchmarks.scaling [--sizes 10000 30000 100000 254654] [--systems tabpriv:* smartnoise-mst]``

For each n, a seeded sample of n rows of ``census/fertility1980.csv`` (the whole table at 254,654) is
synthesised at ε = 5.1, δ = 1e-5 by each system, each run in its own subprocess (peak memory is that
process's ``ru_maxrss``). Writes ``benchmarks/results/scaling.jsonl``, ``scaling.md`` and
``scaling.png``. Figures are recorded, never asserted: this 2-core CPU is shared and timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.runner import ROOT, Dataset, _resolve, expand_systems, run_system

log = logging.getLogger("benchmarks.scaling")
FULL = 254_654


def load_rows(n: int, schema_path: Path, seed: int = 0) -> Dataset:
    """A seeded sample of ``n`` rows of the 1980 census extract (no hold-out needed here)."""
    from tabpriv.schema import Schema

    schema = Schema.load(schema_path)
    df = pd.read_csv(_resolve("../shared/datasets/census/fertility1980.csv"))
    if n < len(df):
        idx = np.sort(np.random.default_rng(seed).choice(len(df), n, replace=False))
        df = df.iloc[idx].reset_index(drop=True)
    df = schema.conform(df)
    split = {"kind": "scaling", "rows": len(df), "sample_seed": seed}
    return Dataset(f"fertility1980_n{len(df)}", df, df.iloc[:0], schema, schema_path, "morekids", split)


def main(argv: list[str] | None = None) -> int:
    """Run the scaling curve and write JSONL, Markdown and PNG under ``benchmarks/results``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000, FULL])
    p.add_argument("--systems", nargs="*", default=["tabpriv:*"])
    p.add_argument("--epsilon", type=float, default=5.1)
    p.add_argument(
        "--delta",
        type=float,
        default=None,
        help="default: min(1e-5, 1 / (10 n)) per size (tabpriv requires delta < 1/n)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default="benchmarks/results/scaling")
    p.add_argument("--tables-only", action="store_true", help="rebuild scaling.md/png from the JSONL")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = _resolve(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / "tmp" / "scaling"
    work.mkdir(parents=True, exist_ok=True)
    schema_path = ROOT / "benchmarks" / "schemas" / "fertility1980.schema.json"
    rows: list[dict[str, Any]] = []
    for n in [] if a.tables_only else a.sizes:
        ds = load_rows(n, schema_path, a.seed)
        for system in expand_systems(a.systems):
            delta = a.delta if a.delta is not None else min(1e-5, 0.1 / len(ds.train))
            _synth, facts = run_system(system, ds, a.epsilon, delta, a.seed, work, a.timeout)
            facts.pop("privacy_report", None)
            row = {
                "system": system,
                "n": len(ds.train),
                "epsilon": a.epsilon,
                "delta": delta,
                "seed": a.seed,
                "cpus": os.cpu_count(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **facts,
            }
            rows.append(row)
            with out.with_suffix(".jsonl").open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            log.info(
                "n=%d %s: %s",
                len(ds.train),
                system,
                row.get("failed")
                or row.get("skipped")
                or f"fit {row.get('fit_s'):.2f} s, peak {row.get('peak_rss_mb')} MB",
            )
            (work / f"{ds.name}_train.csv").unlink(missing_ok=True)
    # Tables and plot from every row recorded so far (latest per system and n).
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for line in out.with_suffix(".jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest[(r["system"], r["n"])] = r
    write_scaling(list(latest.values()), out)
    return 0


def write_scaling(rows: list[dict[str, Any]], out: Path) -> None:
    """Markdown table and log-log PNG (time and peak memory against n, one line per system)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "fit_s" in r]
    lines = [
        "| system | n | fit s | sample s | peak RSS MB | RSS before fit MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["system"], r["n"])):
        if "fit_s" not in r:
            why = str(r.get("failed") or r.get("skipped") or "").strip().splitlines()[-1:]
            lines.append(f"| {r['system']} | {r['n']} | – | – | – | – |  <!-- {' '.join(why)[:160]} -->")
            continue
        lines.append(
            f"| {r['system']} | {r['n']} | {r['fit_s']:.2f} | {r['sample_s']:.2f} | "
            f"{r.get('peak_rss_mb') or float('nan'):.0f} | {r.get('baseline_rss_mb') or float('nan'):.0f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system in sorted({r["system"] for r in ok}):
        g = sorted((r for r in ok if r["system"] == system), key=lambda r: r["n"])
        ns = [r["n"] for r in g]
        axes[0].plot(ns, [r["fit_s"] + r["sample_s"] for r in g], marker="o", label=system)
        axes[1].plot(ns, [r.get("peak_rss_mb") or np.nan for r in g], marker="o", label=system)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="rows n",
        ylabel="fit + sample seconds",
        title="fertility1980, ε = 5.1",
    )
    axes[1].set(xscale="log", xlabel="rows n", ylabel="peak RSS MB (process)", title="memory")
    for ax in axes:
        ax.grid(alpha=0.3)
    if ok:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
