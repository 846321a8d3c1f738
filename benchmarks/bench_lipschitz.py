"""Privacy–utility trade-off of the ``lipschitz-vae`` backend on Adult (issue 6).

Grid (small on purpose: a 2-core CPU shared with other jobs): Adult train subsampled to ``--n-train``
rows, the test split subsampled for the hold-out; epsilon = 5, delta = 1e-5; L in {0.5, 1, 2, 4};
two encoder-noise scales per L; modes: dp/prior, dp/reconstruction, paper/reconstruction, and an
unconstrained non-private VAE (prior samples and noisy reconstructions, no guarantee).

Metrics: logistic-regression ROC AUC (train on synthetic, test on the real hold-out; one-hot +
standardisation; target income), mean 2-way TVD against the real training rows (20 equal-width bins
over the schema bounds for numbers), and a distance-to-closest-record membership attack (members =
training rows, non-members = hold-out rows, equal numbers, seeded): AUC and TPR at 1% FPR.

Usage: ``.venv/bin/python benchmarks/bench_lipschitz.py [--n-train 3000] [--epochs 10]``
Writes ``benchmarks/results/lipschitz.json``, ``lipschitz.md`` and ``lipschitz.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae import lipschitz_torch as lt
from tabpriv.backends.vae.lipschitz import LipschitzVAEBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.datasets import adult_schema, load_adult
from tabpriv.schema import Schema
from tabpriv.transformers import TableTransformer

RESULTS = Path(__file__).resolve().parent / "results"
if __import__("os").environ.get("LIPSCHITZ_BENCH_OUT"):
    RESULTS = Path(__import__("os").environ["LIPSCHITZ_BENCH_OUT"])
EPS, DELTA = 5.0, 1e-5
TARGET = "income"


# -- metrics ---------------------------------------------------------------------------------------
def lr_auc(synth: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> float:
    """Train LR on ``synth``, ROC AUC on ``test`` (one-hot + standardisation)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pos = ">50K"
    y_s = (synth[TARGET].astype(str) == pos).to_numpy()
    y_t = (test[TARGET].astype(str) == pos).to_numpy()
    if y_s.all() or not y_s.any():
        return 0.5
    feats = [c for c in schema.names if c != TARGET]
    cats = [c.name for c in schema if c.name != TARGET and c.kind == "categorical"]
    nums = [c for c in feats if c not in cats]
    pre = ColumnTransformer(
        [
            (
                "c",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="NA"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                cats,
            ),
            ("n", make_pipeline(SimpleImputer(), StandardScaler()), nums),
        ]
    )

    def prep(df: pd.DataFrame) -> pd.DataFrame:
        out = df[feats].copy()
        for c in cats:
            out[c] = out[c].astype(object).where(out[c].notna(), "NA").astype(str)
        for c in nums:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        return out

    model = make_pipeline(pre, LogisticRegression(max_iter=500))
    model.fit(prep(synth), y_s)
    return float(roc_auc_score(y_t, model.predict_proba(prep(test))[:, 1]))


def _discretise(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    cols = []
    for c in schema:
        s = df[c.name]
        if c.kind == "categorical":
            cats = {v: i for i, v in enumerate(c.categories or ())}
            codes = s.map(lambda v, cats=cats: cats.get(v, -1)).fillna(-1).to_numpy()
            codes = np.where(codes < 0, len(cats), codes)
        else:
            lo, hi = float(c.lower or 0.0), float(c.upper or 1.0)
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            codes = np.floor((v - lo) / max(hi - lo, 1e-12) * 20).clip(0, 19)
            codes = np.where(np.isnan(v), 20, codes)
        cols.append(codes.astype(np.int64))
    return np.stack(cols, axis=1)


def mean_tvd2(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema) -> float:
    """Mean total-variation distance over all 2-way marginals."""
    a, b = _discretise(real, schema), _discretise(synth, schema)
    tv = []
    for i, j in itertools.combinations(range(a.shape[1]), 2):
        m = int(max(a[:, j].max(), b[:, j].max())) + 1
        ka, kb = a[:, i] * m + a[:, j], b[:, i] * m + b[:, j]
        size = int(max(ka.max(), kb.max())) + 1
        pa = np.bincount(ka, minlength=size) / len(ka)
        pb = np.bincount(kb, minlength=size) / len(kb)
        tv.append(0.5 * np.abs(pa - pb).sum())
    return float(np.mean(tv))


def dcr_attack(synth: np.ndarray, members: np.ndarray, non_members: np.ndarray) -> dict[str, float]:
    """Distance-to-closest-record attack in encoded space: AUC and TPR at 1% FPR."""
    from sklearn.metrics import roc_auc_score, roc_curve

    s = torch.as_tensor(synth, dtype=torch.float32)

    def score(x: np.ndarray) -> np.ndarray:
        d = torch.cdist(torch.as_tensor(x, dtype=torch.float32), s).min(dim=1).values
        return (-d).numpy()

    sc = np.concatenate([score(members), score(non_members)])
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    fpr, tpr, _ = roc_curve(y, sc)
    return {
        "mia_auc": float(roc_auc_score(y, sc)),
        "mia_tpr_at_1pct_fpr": float(np.interp(0.01, fpr, tpr)),
    }


def empirical_lipschitz(model: lt.LipschitzVAE, x: np.ndarray, rng: np.random.Generator) -> float:
    """Largest ||mu(a)-mu(b)|| / ||a-b|| over random pairs of rows and small perturbations."""
    i, j = rng.integers(0, len(x), 2000), rng.integers(0, len(x), 2000)
    a = x[i].astype(np.float64)
    b = np.where(rng.random((2000, 1)) < 0.5, x[j], a + 1e-3 * rng.standard_normal(a.shape))
    num = np.linalg.norm(lt.encoder_mean(model, a) - lt.encoder_mean(model, b), axis=1)
    den = np.linalg.norm(a - b, axis=1)
    ok = den > 1e-9
    return float((num[ok] / den[ok]).max())


def unconstrained(
    enc: Any, evaluate: Any, rng: np.random.Generator, s: float, epochs: int, releases: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Unconstrained non-private VAE (no guarantee): prior samples and/or noisy reconstructions."""
    out: list[dict[str, Any]] = []
    diameter = 2 * enc.row_norm_bound
    n_synth = enc.n_rows
    tau = math.sqrt(1.0 + s**2)
    for release in releases:
        arch = lt.Arch(enc.width, 64, 8, 2)
        model = lt.build_model(arch, 7)
        heads = lt.Heads(enc.spans)
        cfg = lt.TrainConfig(None, s, tau, 1.0, "spectral", 0.0, epochs, 256, 1e-3, False)
        t0 = time.perf_counter()
        lt.train(model, heads, enc.clipped_rows(), cfg, 7, "cpu")
        fit_s = time.perf_counter() - t0
        g2 = np.random.default_rng(11)
        if release == "prior":
            z = (tau * g2.standard_normal((n_synth, 8))).astype(np.float32)
        else:
            z = lt.encode_noisy(model, enc.clipped_rows(), s, 1, 11, "cpu")
        rows = lt.decode(model, heads, z, "cpu")
        cert = lt.certified_lipschitz(model)
        r: dict[str, Any] = {
            "config": f"unconstrained/{release}" + (f" ({epochs} epochs)" if s != 1.0 else ""),
            "mode": "none",
            "release": release,
            "lipschitz": None,
            "encoder_noise": s,
            "epochs": epochs,
            "guarantee": "none",
            "certified_L": cert,
            "empirical_L": empirical_lipschitz(model, enc.clipped_rows(), rng),
            "nominal_mu_gdp_if_L_were_certified": cert * diameter / s,
            "fit_seconds": fit_s,
        }
        r.update(evaluate(rows, 99))
        out.append(r)
        print(r, flush=True)
    return out


# -- runs ------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--long-only",
        action="store_true",
        help="a few configurations with 10x epochs -> lipschitz_long.json",
    )
    ap.add_argument(
        "--control-only",
        action="store_true",
        help="only the positive control (unconstrained VAE, s=0.1, 10x epochs) -> lipschitz_control.json",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    schema = adult_schema()
    tt = TableTransformer(schema).fit()
    train_df = load_adult("train").sample(args.n_train, random_state=args.seed).reset_index(drop=True)
    test_df = load_adult("test").sample(args.n_test, random_state=args.seed).reset_index(drop=True)
    train_df = schema.conform(train_df)
    test_df = schema.conform(test_df)
    enc = tt.transform(train_df, clip=True)
    enc_test = tt.transform(test_df, clip=True)
    n_mia = min(1000, enc.n_rows, enc_test.n_rows)
    rng = np.random.default_rng(args.seed)
    members = enc.clipped_rows()[rng.choice(enc.n_rows, n_mia, replace=False)]
    non_members = enc_test.clipped_rows()[rng.choice(enc_test.n_rows, n_mia, replace=False)]
    n_synth = enc.n_rows

    def evaluate(rows: np.ndarray, seed: int) -> dict[str, float]:
        # Softmax heads are distributions: decode by sampling them (argmax collapses every row to
        # the modes when the latent code carries little information).
        synth = tt.inverse_transform(rows, categorical="sample", rng=np.random.default_rng(10_000 + seed))
        out = {
            "lr_auc": lr_auc(synth, test_df, schema),
            "tvd2_mean": mean_tvd2(train_df, synth, schema),
        }
        # The attack sees what is released: the decoded table, re-encoded.
        out.update(dcr_attack(tt.transform(synth, clip=True).clipped_rows(), members, non_members))
        return out

    runs: list[dict[str, Any]] = []
    # Real-data reference (train on real train rows).
    ref = {"config": "real train rows (reference)", "lr_auc": lr_auc(train_df, test_df, schema)}
    ref.update(dcr_attack(enc.clipped_rows(), members, non_members))
    ref["tvd2_mean"] = mean_tvd2(train_df, schema.conform(tt.inverse_transform(enc.data)), schema)
    runs.append(ref)
    print(ref, flush=True)
    if args.control_only:
        ctrl = unconstrained(enc, evaluate, rng, 0.1, 10 * args.epochs, ("reconstruction",))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "lipschitz_control.json").write_text(json.dumps({"runs": [ref, *ctrl]}, indent=2))
        return
    diameter = 2 * enc.row_norm_bound

    grid: list[dict[str, Any]] = []
    lips = () if args.long_only else (0.5, 1.0, 2.0, 4.0)
    if args.long_only:
        args.epochs *= 10
        grid = [
            {"mode": "dp", "release": "prior", "lipschitz": 4.0, "encoder_noise": 4.0},
            {"mode": "dp", "release": "reconstruction", "lipschitz": 1.0, "s_scale": 1.0},
            {"mode": "paper", "release": "reconstruction", "lipschitz": 1.0, "s_scale": 1.0},
            {"mode": "paper", "release": "reconstruction", "lipschitz": 4.0, "s_scale": 1.0},
        ]
    for lip in lips:
        for s in (1.0, 4.0):
            grid.append({"mode": "dp", "release": "prior", "lipschitz": lip, "encoder_noise": s})
        for scale in (1.0, 2.0):
            grid.append({"mode": "dp", "release": "reconstruction", "lipschitz": lip, "s_scale": scale})
            grid.append({"mode": "paper", "release": "reconstruction", "lipschitz": lip, "s_scale": scale})
    for i, g in enumerate(grid):
        params = {k: v for k, v in g.items() if k != "s_scale"}
        if "s_scale" in g:
            # calibrated s (dp: half the budget to reconstructions; paper: all of it), times s_scale
            probe = LipschitzVAEBackend(**params, allow_paper_mode=True)
            plan = probe._plan(enc, EPS, DELTA)
            params["encoder_noise"] = plan["encoder_noise"] * g["s_scale"]
        b = LipschitzVAEBackend(**params, allow_paper_mode=g["mode"] == "paper", epochs=args.epochs)
        led = PrivacyLedger(PrivacyBudget(EPS, DELTA))
        t0 = time.perf_counter()
        spend_and_fit(b, enc, led, FitContext("cpu", args.seed + i, True))
        fit_s = time.perf_counter() - t0
        rows = b.sample(n_synth, args.seed + 1000 + i)
        r: dict[str, Any] = {
            "config": f"{g['mode']}/{g['release']}",
            **g,
            "encoder_noise": b.plan_["encoder_noise"],
            "guarantee": b.effective_guarantee,
            "epsilon_spent": led.epsilon_spent,
            "delta_spent": led.delta_spent,
            "spends": [(sp.mechanism[:40], sp.epsilon, sp.delta) for sp in led.spends],
            "mu_gdp": b.plan_.get("mu"),
            "noise_multiplier": b.plan_.get("noise_multiplier"),
            "certified_L": b.lipschitz_bound_,
            "empirical_L": empirical_lipschitz(b.model_, enc.clipped_rows(), rng),
            "fit_seconds": fit_s,
        }
        r.update(evaluate(rows, i))
        runs.append(r)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)

    if args.long_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "lipschitz_long.json").write_text(
            json.dumps({"epochs": args.epochs, "runs": runs}, indent=2)
        )
        return
    runs += unconstrained(enc, evaluate, rng, 1.0, args.epochs, ("prior", "reconstruction"))

    meta = {
        "dataset": "UCI Adult (bundled train split subsample; test split subsample as hold-out)",
        "n_train": enc.n_rows,
        "n_test": enc_test.n_rows,
        "n_mia_each": n_mia,
        "epsilon": EPS,
        "delta": DELTA,
        "epochs": args.epochs,
        "diameter_D": diameter,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "threads": 1,
        "note": (
            "small grid on a shared 2-core CPU; single seed per configuration; categorical heads "
            "decoded by sampling"
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lipschitz.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    write_md(meta, runs)
    plot(runs)


def write_md(meta: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    lines = [
        "# lipschitz-vae on Adult: privacy–utility trade-off",
        "",
        f"Adult train subsample n={meta['n_train']}, hold-out n={meta['n_test']} (test split), "
        f"epsilon={meta['epsilon']}, delta={meta['delta']:g}, {meta['epochs']} epochs, one seed per "
        "row, 1 CPU thread on a shared 2-core machine; softmax heads decoded by sampling. D = 2·sqrt(15) = "
        f"{meta['diameter_D']:.3f}. MIA: distance-to-closest-record, {meta['n_mia_each']} members vs "
        f"{meta['n_mia_each']} non-members. Produced by `benchmarks/bench_lipschitz.py`.",
        "",
        "| config | L | s | guarantee | ε spent | μ-GDP | z (DP-SGD) | certified L | empirical L "
        "| LR AUC | 2-way TVD | MIA AUC | TPR@1%FPR |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: Any, p: str = ".3f") -> str:
        return "–" if v is None else format(v, p)

    for r in runs:
        lines.append(
            f"| {r['config']} | {f(r.get('lipschitz'), 'g')} | {f(r.get('encoder_noise'), '.3g')} | "
            f"{r.get('guarantee', '–')} | {f(r.get('epsilon_spent'))} | {f(r.get('mu_gdp'))} | "
            f"{f(r.get('noise_multiplier'))} | {f(r.get('certified_L'))} | {f(r.get('empirical_L'))} | "
            f"{f(r.get('lr_auc'))} | {f(r.get('tvd2_mean'))} | {f(r.get('mia_auc'))} | "
            f"{f(r.get('mia_tpr_at_1pct_fpr'))} |"
        )
    (RESULTS / "lipschitz.md").write_text("\n".join(lines) + "\n")


def plot(runs: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    keys = [("lr_auc", "LR ROC AUC (higher = better)"), ("tvd2_mean", "mean 2-way TVD (lower = better)"),
            ("mia_tpr_at_1pct_fpr", "DCR MIA TPR @ 1% FPR")]  # fmt: skip
    series: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        if r.get("lipschitz") is None:
            continue
        lab = (
            f"{r['config']} s={r['encoder_noise']:.3g}"
            if r["release"] == "prior"
            else (f"{r['config']} s×{r['s_scale']:g}")
        )
        series.setdefault(lab, []).append((r["lipschitz"], r))  # type: ignore[arg-type]
    for ax, (k, title) in zip(axes, keys, strict=True):
        for lab, pts in series.items():
            pts.sort(key=lambda t: t[0])
            ax.plot([p[0] for p in pts], [p[1][k] for p in pts], marker="o", label=lab)  # type: ignore[index]
        for r in runs:
            if r["config"].startswith("unconstrained"):
                ax.axhline(r[k], ls="--", lw=1, color="k" if r["release"] == "prior" else "grey")
            if r["config"].startswith("real") and k in r:
                ax.axhline(r[k], ls=":", lw=1, color="green")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("Lipschitz target L")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=6)
    fig.suptitle("lipschitz-vae on Adult, ε=5 (dashed: unconstrained VAE; dotted: real data)")
    fig.tight_layout()
    fig.savefig(RESULTS / "lipschitz.png", dpi=110)


if __name__ == "__main__":
    main()
