"""Run a dpmm peer (MST, AIM or PrivBayes, dpmm 0.1.9) on a CSV with a tabpriv public schema.

Runs inside the separate virtual environment ``.venv-dpmm`` (see ``setup_dpmm.sh``; dpmm 0.1.9 pins
numpy 1.26, pandas 2.1 and opendp 0.12); it imports neither tabpriv nor anything from the main
environment and reads the schema JSON directly.

Public coding. Every column is turned into integer codes from the *declared* schema only, exactly as
for the smartnoise peers (``_coding.py``: categories in declared order, small integer ranges exact,
other numbers in ``--bins`` equal-width bins on the declared bounds, a missing value as one more code).
dpmm's own preprocessing (``TableBinner``, which by default spends ``proc_epsilon`` on PrivTree bins)
is switched off (``disable_processing=True``), and the domain, ``{column: number of codes}``, is passed
**explicitly** to ``pipeline.fit(..., domain=...)``: dpmm 0.1.9's ``Mechanism.fit`` otherwise takes the
domain from the private data (``df.max() + 1``), a leak that a later dpmm release fixed.

Accounting, as read in dpmm 0.1.9's source (``dpmm/models``):

* ρ = ``cdp_rho(ε, δ)`` (``dpmm.models.base.mechanisms.cdp2adp``, private-pgm's copy of Canonne,
  Kamath & Steinke 2020: the smallest ρ whose ρ-zCDP implies (ε, δ)-DP), the same conversion as
  ``snsynth.utils.cdp_rho``.
* MST: ρ/3 on the 1-way marginals, ρ/3 on the exponential-mechanism selection of the tree (score
  sensitivity 1), ρ/3 on the 2-way marginals (Gaussian noise, L2 sensitivity 1): zCDP under
  **add/remove-one** neighbours.
* AIM: the same budget rule as private-pgm's AIM (0.9 of each round on a Gaussian marginal, 0.1 on the
  exponential mechanism, score sensitivity = the workload weight, 1): ρ-zCDP under **add/remove-one**.
* PrivBayes: ε/2 pure DP for the exponential-mechanism choice of the network (mutual-information
  scores with the sensitivity of Zhang et al. 2017, which assumes a public row count n, i.e. replace-one
  neighbours), and ρ = ``cdp_rho(ε/2, δ)`` for the Gaussian marginals (add/remove, L2 sensitivity 1);
  (ε, δ) in total by basic composition.
* Noise: dpmm draws its Gaussian noise through OpenDP 0.12's ``make_gaussian`` (its own entropy, not the
  seed), so a fixed ``--seed`` fixes the public randomness (selection, sampling) but not the noise.

``--adjacency replace-one`` runs dpmm at the ε' that makes it (ε, δ)-DP under replace-one, the
relation of every tabpriv guarantee, with the benchmark's rule: for MST and AIM, ρ' = cdp_rho(ε, δ)/4
(group privacy for zCDP, k = 2, Bun & Steinke 2016 Prop. 1.9), ε' found by bisection on dpmm's own
``cdp_rho``; for PrivBayes, the ε' with ``ε'/2 + cdp_eps(4·cdp_rho(ε'/2, δ), δ) <= ε`` (the pure part
already holds for replace-one, the Gaussian part pays the factor 4). The default, ``add-remove``, runs
dpmm at ε as dpmm states it.

``--sample-method sample`` makes dpmm's graphical model draw rows i.i.d. instead of by its default
randomized rounding (``synthetic_data(method='round')``), as for the smartnoise peers.

Usage::

    .venv-dpmm/bin/python benchmarks/peers/dpmm_runner.py --synth mst \
        --input train.csv --schema schema.json --output synth.csv --epsilon 5.1 --delta 1e-5 \
        --seed 0 [--adjacency replace-one] [--n ROWS] [--meta meta.json]
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _coding.py beside this file
from _coding import decode, encode, matched_epsilon, peak_rss_mb, peer_arguments

SYNTHS = ["mst", "aim", "privbayes"]


def privbayes_replace_one_epsilon(
    epsilon: float, delta: float, rho_of: Any, eps_of: Any, tol: float = 1e-9
) -> float:
    """The largest ε' (bisection) with ``ε'/2 + eps_of(4 · rho_of(ε'/2, δ), δ) <= ε``.

    dpmm's PrivBayes spends ε'/2 on a pure-DP exponential mechanism (already replace-one) and
    ``rho_of(ε'/2, δ)`` on add/remove Gaussian marginals, which are 4× that ρ under replace-one.
    """

    def total(e: float) -> float:
        return e / 2 + eps_of(4 * rho_of(e / 2, delta), delta)

    lo, hi = 0.0, epsilon
    while hi - lo > tol * epsilon:
        mid = 0.5 * (lo + hi)
        if total(mid) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def _pipeline(synth: str, epsilon: float, delta: float) -> Any:
    from dpmm.pipelines import AIMPipeline, MSTPipeline, PrivBayesPipeline

    cls = {"mst": MSTPipeline, "aim": AIMPipeline, "privbayes": PrivBayesPipeline}[synth]
    # n_jobs=1: no multiprocessing pool (the benchmark gives each run one core).
    return cls(epsilon=epsilon, delta=delta, n_jobs=1, disable_processing=True)


def _force_sample_method(pipe: Any, method: str) -> None:
    """Make the fitted graphical model draw rows by ``method`` (dpmm's default is ``"round"``)."""
    if method == "round":
        return
    model = pipe.gen.generator.model
    original = model.synthetic_data

    def synthetic_data(rows: Any = None, condition_records: Any = None, method: str = "round") -> Any:
        return original(rows=rows, condition_records=condition_records, method="sample")

    model.synthetic_data = synthetic_data


def main(argv: list[str] | None = None) -> int:
    """Fit one dpmm synthesizer on the coded table, sample, decode, write the CSV and the run facts."""
    a = peer_arguments(__doc__.splitlines()[0], SYNTHS).parse_args(argv)
    warnings.filterwarnings("ignore")
    from dpmm.models.base.mechanisms.cdp2adp import cdp_eps, cdp_rho

    random.seed(a.seed)
    np.random.seed(a.seed)
    schema = json.loads(Path(a.schema).read_text())
    df = pd.read_csv(a.input)
    codes, infos = encode(df, schema, a.bins)
    domain = {i["name"]: int(i["n_codes"]) for i in infos}  # public: from the schema alone

    eps_run = a.epsilon
    if a.adjacency == "replace-one":
        if a.synth == "privbayes":
            eps_run = privbayes_replace_one_epsilon(a.epsilon, a.delta, cdp_rho, cdp_eps)
        else:
            eps_run = matched_epsilon(a.epsilon, a.delta, cdp_rho)
    pipe = _pipeline(a.synth, eps_run, a.delta)
    t0 = time.perf_counter()
    pipe.fit(codes, domain=domain, random_state=a.seed)
    t1 = time.perf_counter()
    _force_sample_method(pipe, a.sample_method)
    n = a.n or len(df)
    sample = pipe.generate(n_records=n, random_state=a.seed + 1)
    sample = pd.DataFrame(sample)[list(codes.columns)]
    out = decode(sample, infos, np.random.default_rng(a.seed + 7919))
    t2 = time.perf_counter()
    out.to_csv(a.output, index=False)
    import importlib.metadata as md

    rho_run = cdp_rho(eps_run / 2, a.delta) if a.synth == "privbayes" else cdp_rho(eps_run, a.delta)
    meta = {
        "system": f"dpmm-{a.synth}"
        + ("-iid" if a.sample_method == "sample" else "")
        + ("-replace-one" if a.adjacency == "replace-one" else ""),
        "epsilon": a.epsilon,
        "delta": a.delta,
        "adjacency": a.adjacency,
        "epsilon_run": eps_run,
        "rho_run": float(rho_run),
        "sample_method": a.sample_method,
        "versions": {k: md.version(k) for k in ("dpmm", "opendp", "numpy", "pandas")},
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "peak_rss_mb": peak_rss_mb(),
        "n_codes": domain,
        "domain_size_log10": float(sum(math.log10(v) for v in domain.values())),
        "note": "bounds and domain from the declared schema, passed explicitly; dpmm preprocessing off "
        "(no budget spent on bins); Gaussian noise from OpenDP (not seeded)",
    }
    if a.meta:
        Path(a.meta).write_text(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
