"""Benchmark of the ``slicing`` / ``slicing-wasserstein`` backends on Adult (train in, test hold-out).

Usage::

    .venv/bin/python benchmarks/bench_slicing.py --name NAME --backend slicing \
        --params '{"estimator": "mmd", "steps": 600}' [--repeats 1] [--epsilon 5.1]

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


def floor_analysis(epsilon: float = 5.1) -> dict[str, Any]:
    """What the release supports at best: least-squares means and debiased second moments.

    For m' in {128, 512}: the one-way categorical TVD of the least-squares means of ``(XU+V)U^+``
    (clipped, renormalised) and the test AUC of the ridge linear predictor of income built from the
    debiased second moments of the release. Pure post-processing of one release (seed 0).
    """
    from sklearn.metrics import roc_auc_score

    from tabpriv.backends._slicing_mechanism import block_sensitivity, calibrate_sigma, privatise
    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.transformers import TableTransformer

    sch = adult_schema()
    tt = TableTransformer(sch).fit()
    tr = tt.transform(load_adult("train"))
    te = tt.transform_validated(sch.validate(load_adult("test"))[0])
    d, n, delta_s = tr.width, tr.n_rows, block_sensitivity(tr.spans)
    inc = next(s for s in tr.spans if s.name == "income")
    yi = inc.start + 1  # '>50K'
    feats = [j for j in range(d) if not inc.start <= j < inc.stop]
    out: dict[str, Any] = {"d": d, "n": n, "delta_sensitivity": delta_s, "by_m_prime": {}}
    for m_prime in (128, 512):
        cal = calibrate_sigma(epsilon, 1e-5, d, m_prime, delta_s)
        rel = privatise(tr, sigma=cal.sigma, n_slices=m_prime // 2, k=2, seed=0, accounting={})
        pinv = np.linalg.pinv(rel.projection.astype(np.float64))
        xh = rel.noisy.astype(np.float64) @ pinv
        noise_cov = cal.sigma**2 * pinv.T @ pinv
        tv = []
        for s in tr.spans:
            if s.kind == "categorical":
                p = np.clip(xh[:, s.slice].mean(0), 0, None)
                p = p / max(p.sum(), 1e-12)
                tv.append(0.5 * float(np.abs(p - tr.data[:, s.slice].mean(0)).sum()))
        mu = xh.mean(0)
        cov = (xh.T @ xh) / n - noise_cov - np.outer(mu, mu)
        aucs = {}
        for lam in (1e-3, 1e-1, 1.0):
            w = np.linalg.solve(cov[np.ix_(feats, feats)] + lam * np.eye(len(feats)), cov[feats, yi])
            aucs[str(lam)] = float(roc_auc_score(te.data[:, yi] > 0.5, te.data[:, feats] @ w))
        out["by_m_prime"][str(m_prime)] = {
            "sigma": cal.sigma,
            "per_coordinate_noise_sd": float(np.sqrt(np.mean(np.diag(noise_cov)))),
            "ls_mean_categorical_tvd_1way": float(np.mean(tv)),
            "moment_ridge_auc": aucs,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "slicing_floor.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="run")
    ap.add_argument("--backend", default="slicing")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--epsilon", type=float, default=5.1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor", action="store_true", help="only run the information floor analysis")
    args = ap.parse_args()
    if args.floor:
        print(json.dumps(floor_analysis(args.epsilon), indent=1))
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
