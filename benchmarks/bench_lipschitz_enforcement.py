"""Spectral normalisation (certified) vs gradient penalty (uncertified) in the lipschitz-vae backend.

Issue 6 asks that the two Lipschitz enforcements be compared. Both modes, L = 1, on an Adult
subsample (train rows in, test rows as hold-out), judged with the evaluation suite (2-way TVD, LR AUC,
and the three membership-inference attacks' AUC and TPR at 1% FPR).

Run: ``python benchmarks/bench_lipschitz_enforcement.py [--n 4000] [--epochs 15]``; writes
``benchmarks/results/lipschitz_enforcement.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _bound(backend: object) -> float:
    """The fitted decoder's Lipschitz bound (the backend must be the lipschitz-vae one)."""
    from tabpriv.backends.vae.lipschitz import LipschitzVAEBackend

    assert isinstance(backend, LipschitzVAEBackend), type(backend)
    return float(backend.lipschitz_bound_)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--epsilon", type=float, default=5.1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from tabpriv import Synthesizer, evaluate
    from tabpriv.datasets import adult_schema, load_adult

    schema = adult_schema()
    train = load_adult("train").sample(args.n, random_state=0).reset_index(drop=True)
    test = load_adult("test").sample(args.n, random_state=0).reset_index(drop=True)
    rows: list[dict[str, Any]] = []
    for mode in ("dp", "paper"):
        for enforcement in ("spectral", "penalty"):
            params = {
                "mode": mode,
                "allow_paper_mode": mode == "paper",
                "release": "reconstruction",
                "enforcement": enforcement,
                "lipschitz": 1.0,
                "epochs": args.epochs,
            }
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                synth = Synthesizer(
                    backend="lipschitz-vae", epsilon=args.epsilon, schema=schema, random_state=0,
                    backend_params=params, device="cpu",
                ).fit(train)  # fmt: skip
                out = synth.sample(len(train))
            fit_s = time.perf_counter() - t0
            ev = evaluate(train, out, schema, holdout=test, target="income", sdmetrics=False).to_dict()
            attacks = ev["membership"]["attacks"]
            rep = synth.privacy_report
            row = {
                "mode": mode,
                "enforcement": enforcement,
                "guarantee": rep.guarantee,
                "end_to_end_dp": rep.end_to_end_dp,
                "epsilon_reported": rep.epsilon,
                "lipschitz_bound": _bound(synth.backend_),
                "lipschitz_bound_certified": enforcement == "spectral",
                "tvd2_mean": ev["marginals"]["two_way"]["mean"],
                "lr_auc": ev["utility"]["models"]["logistic_regression"]["synthetic"]["roc_auc"],
                "mia_auc_max": max(a["auc"] for a in attacks.values()),
                "mia_tpr_1pct_max": max(a["tpr_at_fpr_1pct"] for a in attacks.values()),
                "fit_sample_s": fit_s,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"n": args.n, "epochs": args.epochs, "epsilon": args.epsilon, "device": "cpu",
            "machine": platform.platform(), "cpu_count": __import__("os").cpu_count()}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lipschitz_enforcement.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# lipschitz-vae: spectral vs penalty (Adult n={args.n}, test hold-out n={args.n}, "
        f"ε={args.epsilon}, L=1, {args.epochs} epochs, seed 0, CPU)",
        "",
        "| mode | enforcement | guarantee | end-to-end DP | ε | L bound (certified?) | 2-way TVD | LR AUC "
        "| MIA AUC (max of 3) | TPR@1%FPR (max of 3) | fit+sample s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cert = "yes" if r["lipschitz_bound_certified"] else "no"
        cells = [
            r["mode"], r["enforcement"], r["guarantee"], str(r["end_to_end_dp"]),
            f"{r['epsilon_reported']:.3f}", f"{r['lipschitz_bound']:.3f} ({cert})", f"{r['tvd2_mean']:.3f}",
            f"{r['lr_auc']:.3f}", f"{r['mia_auc_max']:.3f}", f"{r['mia_tpr_1pct_max']:.3f}",
            f"{r['fit_sample_s']:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "lipschitz_enforcement.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
