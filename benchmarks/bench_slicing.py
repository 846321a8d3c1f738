"""Benchmark of the ``slicing`` / ``slicing-wasserstein`` backends on Adult (train in, test hold-out).

Usage::

    .venv/bin/python benchmarks/bench_slicing.py --name NAME --backend slicing \
        --params '{"estimator": "mmd", "steps": 600}' [--repeats 1] [--epsilon 5.1]

    .venv/bin/python benchmarks/bench_slicing.py --suite subsample   # gamma in {1, 0.5, 0.25} x 2 seeds
    .venv/bin/python benchmarks/bench_slicing.py --suite kmm-ridge   # kmm ridge tau grid, seed 0

The suites score every run with :func:`tabpriv.evaluate` (hold-out = Adult's test split, target
``income``; SDMetrics off) and write ``benchmarks/results/slicing_subsample.{json,md}`` /
``slicing_kmm_ridge.{json,md}`` after each run.

Appends one record per run to ``benchmarks/results/slicing.json`` and rewrites
``benchmarks/results/slicing.md``. Quality is measured with a small local helper (LR ROC AUC trained on
synthetic, tested on the real test split: one-hot + standardisation, target ``income``; mean 2-way TVD
with numbers in 20 equal-width bins over the schema bounds; mean 1-way TVD).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def _codes(df: pd.DataFrame, schema: Any, bins: int = 20) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for col in schema:
        s = df[col.name]
        if col.kind == "categorical":
            cats = [str(c) for c in col.categories]
            lut = {c: i for i, c in enumerate(cats)}
            out[col.name] = s.astype(str).map(lambda v, lut=lut: lut.get(v, len(lut))).to_numpy()
        else:
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            lo, hi = float(col.lower), float(col.upper)
            c = np.floor((x - lo) / (hi - lo) * bins).clip(0, bins - 1)
            out[col.name] = np.where(np.isnan(x), bins, c).astype(int)
    return out


def tvd_scores(real: pd.DataFrame, syn: pd.DataFrame, schema: Any) -> dict[str, float]:
    """Mean 1-way and 2-way total variation distance."""
    a, b = _codes(real, schema), _codes(syn, schema)
    names = [c.name for c in schema]

    def tv(x: np.ndarray, y: np.ndarray) -> float:
        size = int(max(x.max(), y.max())) + 1
        p = np.bincount(x, minlength=size) / len(x)
        q = np.bincount(y, minlength=size) / len(y)
        return 0.5 * float(np.abs(p - q).sum())

    one = [tv(a[c], b[c]) for c in names]
    two = []
    for c1, c2 in itertools.combinations(names, 2):
        base = int(max(a[c2].max(), b[c2].max())) + 1
        two.append(tv(a[c1] * base + a[c2], b[c1] * base + b[c2]))
    return {"tvd_1way": float(np.mean(one)), "tvd_2way": float(np.mean(two))}


def lr_auc(train: pd.DataFrame, test: pd.DataFrame, target: str = "income") -> float:
    """ROC AUC of logistic regression trained on ``train`` and tested on ``test``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pos = ">50K"
    ytr = (train[target].astype(str) == pos).to_numpy()
    yte = (test[target].astype(str) == pos).to_numpy()
    if ytr.all() or not ytr.any():
        return 0.5
    xcols = [c for c in train.columns if c != target]
    cat = [c for c in xcols if train[c].dtype == object or str(train[c].dtype) == "category"]
    num = [c for c in xcols if c not in cat]
    pre = ColumnTransformer(
        [
            ("c", OneHotEncoder(handle_unknown="ignore"), cat),
            ("n", StandardScaler(), num),
        ]
    )
    model = make_pipeline(pre, LogisticRegression(max_iter=1000))
    tr = train[xcols].copy()
    te = test[xcols].copy()
    for c in cat:
        tr[c] = tr[c].astype(str)
        te[c] = te[c].astype(str)
    for c in num:
        tr[c] = tr[c].astype(float).fillna(0.0)
        te[c] = te[c].astype(float).fillna(0.0)
    model.fit(tr, ytr)
    return float(roc_auc_score(yte, model.predict_proba(te)[:, 1]))


def run(backend: str, params: dict[str, Any], epsilon: float, seed: int) -> dict[str, Any]:
    """Fit + sample once; return timings and quality."""
    import torch

    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    torch.set_num_threads(1)
    schema = adult_schema()
    train, test = load_adult("train"), load_adult("test")
    t0 = time.perf_counter()
    syn = Synthesizer(backend, epsilon=epsilon, delta=1e-5, schema=schema, random_state=seed,
                      backend_params=params)  # fmt: skip
    syn.fit(train)
    t1 = time.perf_counter()
    out = syn.sample(len(train))
    t2 = time.perf_counter()
    rep = syn.privacy_report
    res: dict[str, Any] = {
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "epsilon_spent": rep.epsilon,
        "sigma": rep.noise.get("sigma"),
        "lr_auc": lr_auc(out, test),
        **tvd_scores(test, out, schema),
    }
    return res


SUITES: dict[str, list[tuple[str, dict[str, Any], list[int]]]] = {
    "subsample": [
        ("gamma=1 (no subsampling)", {}, [0, 1]),
        ("gamma=0.5", {"subsample": 0.5}, [0, 1]),
        ("gamma=0.25", {"subsample": 0.25}, [0, 1]),
    ],
    "kmm-ridge": [
        (
            f"kmm tau={tau:g}",
            {"estimator": "kmm", "n_slices": 64, "steps": 150, "slices_per_step": 16, "reg": tau},
            seeds,
        )
        for tau, seeds in ((1e-3, [0]), (1e-2, [0, 1]), (1e-1, [0]), (1.0, [0, 1]), (10.0, [0]))
    ],
}


def run_evaluated(params: dict[str, Any], epsilon: float, seed: int) -> dict[str, Any]:
    """Fit + sample once and score with :func:`tabpriv.evaluate` (hold-out: Adult test split)."""
    import warnings

    import torch

    from tabpriv import evaluate
    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    torch.set_num_threads(1)
    schema = adult_schema()
    train, test = load_adult("train"), load_adult("test")
    t0 = time.perf_counter()
    syn = Synthesizer("slicing", epsilon=epsilon, delta=1e-5, schema=schema, random_state=seed,
                      backend_params=params)  # fmt: skip
    syn.fit(train)
    t1 = time.perf_counter()
    out = syn.sample(len(train))
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = evaluate(train, out, schema, holdout=test, target="income", sdmetrics=False, n_attack=500)
    t3 = time.perf_counter()
    pr = syn.privacy_report
    from tabpriv.backends.slicing.backend import SlicingBackend

    backend = syn.backend_
    assert isinstance(backend, SlicingBackend), type(backend)
    lr = rep["utility"]["models"]["logistic_regression"]
    return {
        "seed": seed,
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "evaluate_s": t3 - t2,
        "epsilon": pr.epsilon,
        "epsilon_unamplified": pr.extra.get("epsilon_unamplified"),
        "sigma": pr.noise.get("sigma"),
        "rows_projected": int(backend.release_.noisy.shape[0]),
        "lr_auc": lr["synthetic"]["roc_auc"],
        "lr_auc_real": lr["real"]["roc_auc"],
        "tvd_1way": rep["marginals"]["one_way"]["mean"],
        "tvd_2way": rep["marginals"]["two_way"]["mean"],
        "loss_final": backend.loss_history_[-1],
    }


def run_suite(suite: str, epsilon: float) -> None:
    """Run a named grid sequentially, rewriting its JSON and Markdown after every run."""
    base = RESULTS / f"slicing_{suite.replace('-', '_')}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    old = (
        json.loads(base.with_suffix(".json").read_text())["records"]
        if base.with_suffix(".json").exists()
        else []
    )
    records: list[dict[str, Any]] = []
    for label, params, seeds in SUITES[suite]:
        prev = next((r for r in old if r["run"] == label and r["params"] == params), None)
        runs = [] if prev is None else [r for r in prev["runs"] if r["seed"] in seeds]
        for seed in [*seeds, None]:
            if seed is not None:
                if any(r["seed"] == seed for r in runs):  # resume: already measured
                    continue
                runs.append(run_evaluated(params, epsilon, seed))
                print(json.dumps({"run": label, **runs[-1]}), flush=True)
            if not runs:
                continue
            rec = {
                "run": label,
                "params": params,
                "epsilon_target": epsilon,
                "seeds": [r["seed"] for r in runs],
                **{
                    f"{k}_median": statistics.median(r[k] for r in runs)
                    for k in ("fit_s", "lr_auc", "tvd_1way", "tvd_2way")
                },
                "runs": list(runs),
            }
            records = [*(r for r in records if r["run"] != label), rec]
            _write_suite(base, suite, records)


def _write_suite(base: Path, suite: str, records: list[dict[str, Any]]) -> None:
    meta = {
        "suite": suite,
        "dataset": "Adult (train in, test hold-out), delta=1e-5",
        "evaluation": "tabpriv.evaluate(train, synthetic, schema, holdout=test, target='income', "
        "sdmetrics=False, n_attack=500)",
        "machine": "2 shared CPU cores (one busy with another benchmark), torch 1 thread, no GPU",
        "records": records,
    }
    base.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = [
        f"# slicing suite `{suite}` on Adult (eps=5.1, delta=1e-5; train in, test hold-out)",
        "",
        f"Evaluation: `{meta['evaluation']}`. Machine: {meta['machine']}. Medians over the seeds; per "
        "seed in the JSON.",
        "",
        "| run | params | seeds | rows projected | sigma | eps (guarantee) | eps un-amplified | fit s "
        "| LR AUC | 1-way TVD | 2-way TVD | per seed (AUC / 2-way TVD) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        r0 = r["runs"][0]
        per = "; ".join(f"{x['lr_auc']:.3f} / {x['tvd_2way']:.3f}" for x in r["runs"])
        lines.append(
            f"| {r['run']} | `{json.dumps(r['params'])}` | {r['seeds']} | {r0['rows_projected']} | "
            f"{r0['sigma']:.3f} | {r0['epsilon']:.4f} | {r0['epsilon_unamplified']:.4f} | "
            f"{r['fit_s_median']:.1f} | {r['lr_auc_median']:.3f} | {r['tvd_1way_median']:.3f} | "
            f"{r['tvd_2way_median']:.3f} | {per} |"
        )
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="run")
    ap.add_argument("--backend", default="slicing")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--epsilon", type=float, default=5.1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor", action="store_true", help="run benchmarks/slicing_floor.py instead")
    ap.add_argument("--suite", choices=sorted(SUITES), default=None, help="run a named grid")
    args = ap.parse_args()
    if args.suite:
        run_suite(args.suite, args.epsilon)
        return
    if args.floor:  # moved to its own script; kept as an alias
        import runpy
        import sys

        sys.argv = [str(Path(__file__).with_name("slicing_floor.py")), "--epsilon", str(args.epsilon)]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    params = json.loads(args.params)
    runs = [run(args.backend, params, args.epsilon, args.seed + i) for i in range(args.repeats)]
    rec = {
        "name": args.name,
        "backend": args.backend,
        "params": params,
        "epsilon": args.epsilon,
        "repeats": args.repeats,
        "fit_sample_s_median": statistics.median(r["fit_s"] + r["sample_s"] for r in runs),
        **{k: statistics.median(r[k] for r in runs) for k in ("lr_auc", "tvd_1way", "tvd_2way")},
        "sigma": runs[0]["sigma"],
        "epsilon_spent": runs[0]["epsilon_spent"],
        "runs": runs,
        "machine": "2 shared CPU cores, torch 1 thread, no GPU",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    jpath = RESULTS / "slicing.json"
    data = json.loads(jpath.read_text()) if jpath.exists() else []
    data.append(rec)
    jpath.write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# slicing backends on Adult (eps=5.1, delta=1e-5; train in, test hold-out)",
        "",
        "| run | backend | params | fit+sample s (median) | LR AUC | 1-way TVD | 2-way TVD |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data:
        lines.append(
            f"| {r['name']} | {r['backend']} | `{json.dumps(r['params'])}` | "
            f"{r['fit_sample_s_median']:.1f} | {r['lr_auc']:.3f} | {r['tvd_1way']:.3f} | "
            f"{r['tvd_2way']:.3f} |"
        )
    (RESULTS / "slicing.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
