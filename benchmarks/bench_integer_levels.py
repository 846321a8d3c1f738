"""Integer columns of the VAE backends before/after the shared one-level-per-value rule (issue 18).

Usage::

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_integer_levels.py [--backends lipschitz-vae]

Fits each backend on Adult's training split (ε = 5.1, δ = 1e-5, seed 0, 2 epochs) twice: with the old
rule (``integer_levels = 0``: one bin per value only up to ``numeric_bins`` = 20 values; patched in
through the backend module's ``DEFAULT_MAX_LEVELS``) and with the new one (up to 100 values), and
reports per integer column the 1-way TVD of the sampled table against the training table (one cell per
value), the share of sampled rows on values the training table never has, and the most common value's
share. Results: ``benchmarks/results/integer_levels.json``. Only the public schema decides the layout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MODULES = {"lipschitz-vae": "lipschitz", "dpsgd-vae": "dpsgd", "dp2-vae": "dp2"}
PARAMS: dict[str, dict[str, Any]] = {
    "lipschitz-vae": {"epochs": 2},
    "dpsgd-vae": {"epochs": 2},
    "dp2-vae": {},
}


def run(backend: str, levels: int) -> dict[str, Any]:
    """One fit + sample with ``integer_levels = levels``."""
    import torch

    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer
    from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

    torch.set_num_threads(1)
    mod = importlib.import_module(f"tabpriv.backends.vae.{MODULES[backend]}")
    mod.DEFAULT_MAX_LEVELS = levels  # type: ignore[attr-defined]
    try:
        train, schema = load_adult("train"), adult_schema()
        c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        syn = Synthesizer(backend, epsilon=5.1, delta=1e-5, schema=schema, random_state=0, device="cpu",
                          backend_params=PARAMS[backend])  # fmt: skip
        syn.fit(train)
        out = syn.sample(len(train))
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0
    finally:
        mod.DEFAULT_MAX_LEVELS = DEFAULT_MAX_LEVELS  # type: ignore[attr-defined]
    cols: dict[str, Any] = {}
    for col in schema:
        if col.kind != "integer" or col.n_levels is None or col.n_levels > 100:
            continue
        r = train[col.name].dropna().astype(np.int64).value_counts(normalize=True)
        s = out[col.name].dropna().astype(np.int64).value_counts(normalize=True)
        cols[col.name] = {
            "n_values": col.n_levels,
            "tvd_1way": round(0.5 * float(r.sub(s, fill_value=0.0).abs().sum()), 4),
            "share_on_values_never_in_data": round(float(s[~s.index.isin(r.index)].sum()), 4),
            "mode_share_real": round(float(r.max()), 4),
            "share_of_real_mode_in_synthetic": round(float(s.get(r.idxmax(), 0.0)), 4),
        }
    return {"backend": backend, "integer_levels": levels, "user_cpu_s": round(cpu, 1), "columns": cols}


def main() -> None:
    """Old vs new rule for each backend; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backends", nargs="+", default=["lipschitz-vae"])
    args = ap.parse_args()
    recs = [run(b, lv) for b in args.backends for lv in (0, 100)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "integer_levels.json").write_text(json.dumps(recs, indent=2) + "\n")
    print(json.dumps(recs, indent=1))


if __name__ == "__main__":
    main()
