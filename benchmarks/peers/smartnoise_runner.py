"""Run an OpenDP smartnoise-synth peer (MST or AIM) on a CSV with a tabpriv public schema.

Runs inside the separate virtual environment ``.venv-smartnoise`` (see ``setup_smartnoise.sh``); it
imports neither tabpriv nor anything from the main environment, and reads the schema JSON directly.

Public bounds, no budget on preprocessing: every column is turned into integer codes from the
*declared* schema only: categories in their declared order, integers with at most ``b`` values kept
exact, other numbers cut into ``b`` equal-width bins on the declared ``[lower, upper]`` (``b`` = the
column's ``bins`` or ``--bins``, as in tabpriv's evaluation), a missing value as one extra code.
Each coded column is handed to smartnoise as a ``BinTransformer`` with fixed bounds (``epsilon=0``),
so its domain is public and the whole ε goes to the synthesizer. Synthetic codes are decoded back:
categories by index, binned numbers uniformly at random within their bin (integers: uniformly over the
whole numbers of the bin).

Adjacency. smartnoise's MST and AIM account in zCDP for **add/remove-one** neighbours (a marginal
has L2 sensitivity 1, the selection scores sensitivity 1), turning ``(ε, δ)`` into ρ with
``snsynth.utils.cdp_rho``. tabpriv's guarantees are for **replace-one** neighbours. A replacement is a
removal and an addition, so by group privacy for zCDP (Bun & Steinke 2016, Prop. 1.9, k = 2) a mechanism
that is ρ-zCDP under add/remove is 4ρ-zCDP under replace-one. ``--adjacency replace-one`` therefore runs
the peer at the ε' whose ρ' = cdp_rho(ε, δ) / 4, so that its replace-one guarantee is the (ε, δ) asked
for (conservative: MST's Gaussian measurements alone would need only a factor 2). The default,
``add-remove``, runs smartnoise at ε as smartnoise states it.

Sampling. snsynth's MST and AIM draw the synthetic rows with mbi 1.1's default
``synthetic_data(method='round')`` (randomized rounding of each conditional to counts);
``--sample-method sample`` draws them i.i.d. from the same fitted model instead (post-processing only:
the fit and its privacy cost are unchanged). The benchmark names that variant ``smartnoise-mst-iid``.

The public coding (``encode``/``decode``) lives in ``_coding.py`` beside this file, shared with the dpmm
and OpenDP peers, and is re-exported here.

Usage::

    .venv-smartnoise/bin/python benchmarks/peers/smartnoise_runner.py --synth mst \
        --input train.csv --schema schema.json --output synth.csv --epsilon 5.1 --delta 1e-5 \
        --seed 0 [--adjacency replace-one] [--sample-method sample] [--n ROWS] [--meta meta.json]
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
from _coding import (  # re-exported: the codec tests import them from here
    _bin_code,
    _cat_key,
    _first_integer,
    _levels,
    decode,
    encode,
    matched_epsilon,
    peak_rss_mb,
    peer_arguments,
)

__all__ = [
    "_bin_code",
    "_cat_key",
    "_first_integer",
    "_levels",
    "decode",
    "encode",
    "main",
    "matched_epsilon",
]


def _sample(synth: Any, n: int, method: str) -> Any:
    """``synth.sample(n)`` with mbi's ``synthetic_data`` drawing rows by ``method``.

    snsynth's MST and AIM call ``self.synthesizer.synthetic_data(rows=n)``, i.e. mbi 1.1's default
    ``method="round"`` (randomized rounding of each conditional to counts); ``"sample"`` draws the
    rows i.i.d. from the same fitted model instead. Post-processing only: the fit is the same.
    """
    if method == "round":
        return synth.sample(n)
    from mbi import MarkovRandomField

    original = MarkovRandomField.synthetic_data

    def synthetic_data(self: Any, rows: int | None = None, method: str = "round") -> Any:
        return original(self, rows, "sample")

    MarkovRandomField.synthetic_data = synthetic_data
    try:
        return synth.sample(n)
    finally:
        MarkovRandomField.synthetic_data = original


def main(argv: list[str] | None = None) -> int:
    p = peer_arguments(__doc__.splitlines()[0], ["mst", "aim"])
    a = p.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from snsynth import Synthesizer
    from snsynth.transform import BinTransformer, TableTransformer

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    schema = json.loads(Path(a.schema).read_text())
    df = pd.read_csv(a.input)
    codes, infos = encode(df, schema, a.bins)
    tt = TableTransformer(
        [BinTransformer(bins=i["n_codes"], lower=-0.5, upper=i["n_codes"] - 0.5) for i in infos]
    )
    from snsynth.utils import cdp_rho

    eps_run = a.epsilon
    if a.adjacency == "replace-one":
        eps_run = matched_epsilon(a.epsilon, a.delta, cdp_rho)
    synth = Synthesizer.create(a.synth, epsilon=eps_run, delta=a.delta, verbose=False)
    t0 = time.perf_counter()
    synth.fit(codes, transformer=tt, preprocessor_eps=0.0)
    t1 = time.perf_counter()
    n = a.n or len(df)
    sample = _sample(synth, n, a.sample_method)
    sample = pd.DataFrame(sample, columns=codes.columns) if not isinstance(sample, pd.DataFrame) else sample
    out = decode(sample, infos, np.random.default_rng(a.seed + 7919))
    t2 = time.perf_counter()
    out.to_csv(a.output, index=False)
    meta = {
        "system": f"smartnoise-{a.synth}"
        + ("-iid" if a.sample_method == "sample" else "")
        + ("-replace-one" if a.adjacency == "replace-one" else ""),
        "sample_method": a.sample_method,
        "epsilon": a.epsilon,
        "delta": a.delta,
        "adjacency": a.adjacency,
        "epsilon_run": eps_run,
        "rho_run": float(cdp_rho(eps_run, a.delta)),
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "peak_rss_mb": peak_rss_mb(),
        "n_codes": {i["name"]: i["n_codes"] for i in infos},
        "domain_size_log10": float(sum(math.log10(i["n_codes"]) for i in infos)),
        "note": "bounds from the declared schema; preprocessor_eps=0 (no budget spent on bounds)",
    }
    if a.meta:
        Path(a.meta).write_text(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
