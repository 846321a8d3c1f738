"""Benchmark of the whole evaluation (tabpriv.evaluation.evaluate) on Adult and the 1980 census.

Targets (issue 3): Adult (32,561 train / 16,281 hold-out) in <= 30 s; fertility1980 (254,654 rows)
in <= 2 min and <= 4 GB peak memory, on the project's 2-core CPU. Each configuration runs in a fresh
subprocess (so peak RSS is that run's own); median of 3 runs. The "synthetic" table is the
column-independent resample of the training table (what the ``independent`` baseline produces), so the
timings include realistic distances and model fits.

Usage: .venv/bin/python benchmarks/bench_evaluation.py [--repeats 3] [--only adult|fertility]
Writes benchmarks/results/evaluation.json and benchmarks/results/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "benchmarks" / "results"
COLS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
        "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
        "native-country", "income"]  # fmt: skip
TARGETS = {"adult": {"seconds": 30.0}, "fertility": {"seconds": 120.0, "peak_gb": 4.0}}


def _independent(df, n, seed):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: df[c].to_numpy()[rng.integers(0, len(df), n)] for c in df.columns})


def _load(name: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    from tabpriv.schema import Schema

    if name == "adult":

        def read(name: str, skip: int) -> pd.DataFrame:
            return pd.read_csv(
                SHARED / "adult" / name,
                header=None,
                names=COLS,
                skipinitialspace=True,
                na_values="?",
                skiprows=skip,
            )

        train, hold = read("adult.data", 0), read("adult.test", 1)
        hold["income"] = hold["income"].str.rstrip(".")
        schema_path = ROOT / "datasets" / "adult.schema.json"
        schema = (
            Schema.load(schema_path)
            if schema_path.exists()
            else Schema.infer(pd.concat([train, hold]), warn=False)
        )
        return train, hold, schema, "income"
    df = pd.read_csv(SHARED / "census" / "fertility1980.csv")
    schema = Schema.infer(df, warn=False)
    perm = df.sample(frac=1.0, random_state=0)
    n_train = (2 * len(df)) // 3
    return perm.iloc[:n_train], perm.iloc[n_train:], schema, "morekids"


def child(name: str) -> None:
    """Run one evaluation and print its timing and peak memory as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    train, hold, schema, target = _load(name)
    n_syn = len(train) if name == "adult" else len(train) + len(hold)
    syn = _independent(train, n_syn, seed=1)
    t = time.perf_counter()
    import sdmetrics.reports  # noqa: F401  (import cost is reported separately)
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401

    from tabpriv.evaluation import evaluate

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    rep = evaluate(train, syn, schema, holdout=hold, target=target)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "seconds": wall, "import_seconds": import_s, "peak_bytes": peak, "sections": rep["timings_s"],
        "rows": rep["n_rows"], "sdmetrics_error": rep["sdmetrics"].get("error"),
        "mean_2way_tvd": rep["marginals"]["two_way"]["mean"],
        "max_attack_auc": max(a["auc"] for a in rep["membership"]["attacks"].values()),
    }))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["adult", "fertility"], default=None)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    names = [args.only] if args.only else ["adult", "fertility"]
    out: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "note": "Wall time of evaluate() only (data loading and the one-off import of sdmetrics "
        "and scikit-learn excluded; the import is reported as median_import_seconds); peak RSS of the whole "
        "child process; median of the repeats. The machine is shared, so timings are noisy.",
        "results": {},
    }
    for name in names:
        if not SHARED.exists():
            print("shared datasets not found; nothing to do", file=sys.stderr)
            return
        runs = []
        for _ in range(args.repeats):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", name],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(name, f"{runs[-1]['seconds']:.1f} s", f"{runs[-1]['peak_bytes'] / 2**30:.2f} GiB",
                  file=sys.stderr)  # fmt: skip
        med = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_bytes"] for r in runs)
        tgt = TARGETS[name]
        out["results"][name] = {
            "rows": runs[0]["rows"],
            "median_seconds": med,
            "all_seconds": [r["seconds"] for r in runs],
            "median_import_seconds": statistics.median(r["import_seconds"] for r in runs),
            "peak_gib": peak / 2**30,
            "target_seconds": tgt["seconds"],
            "target_peak_gb": tgt.get("peak_gb"),
            "meets_time": med <= tgt["seconds"],
            "meets_memory": peak <= tgt.get("peak_gb", float("inf")) * 1e9,
            "median_sections_s": {
                k: statistics.median(r["sections"][k] for r in runs) for k in runs[0]["sections"]
            },
            "mean_2way_tvd": runs[0]["mean_2way_tvd"],
            "max_attack_auc": runs[0]["max_attack_auc"],
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "evaluation.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "| table | train / hold-out / synthetic rows | median s (runs) | import s | target s | "
        "peak GiB | target GB | sections (median s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in out["results"].items():
        rows = r["rows"]
        secs = ", ".join(f"{k} {v:.1f}" for k, v in r["median_sections_s"].items() if k != "total")
        lines.append(
            f"| {name} | {rows['real_train']:,} / {rows['holdout']:,} / {rows['synthetic']:,} | "
            f"{r['median_seconds']:.1f} ({', '.join(f'{s:.1f}' for s in r['all_seconds'])}) | "
            f"{r['median_import_seconds']:.1f} | "
            f"{r['target_seconds']:.0f} | {r['peak_gib']:.2f} | {r['target_peak_gb'] or '–'} | "
            f"{secs} |"
        )
    lines.append("")
    lines.append(f"Machine: {out['machine']}")
    (RESULTS / "evaluation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
