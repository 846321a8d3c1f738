"""Run OpenDP's own marginal synthesizer (MST or AIM, ``opendp.extras.mbi``) on a CSV with a tabpriv schema.

Runs inside the separate virtual environment ``.venv-opendp-synth`` (see ``setup_opendp_synth.sh``:
``opendp[mbi]``, which pins private-pgm's mbi 1.1); it imports neither tabpriv nor anything from the
main environment and reads the schema JSON directly.

Public coding. Every column is turned into integer codes from the *declared* schema only, exactly as
for the smartnoise and dpmm peers (``_coding.py``). The codes go to OpenDP's polars front end,
``Context.compositor(...).query(...).contingency_table(keys=..., algorithm=dp.mbi.MST() | AIM())``,
with **every** column's keys given (``range(k)``; a missing value becomes OpenDP's null key), so no key
is discovered from the data and OpenDP requires δ = 0 for the release (it says so when keys span all
columns). OpenDP always adds a null key to each column; a synthetic null in a column that has no
missing values is replaced by a value drawn from that column's own non-null synthetic values
(post-processing; the count is recorded as ``nulls_redrawn``).

Accounting (OpenDP's own, ``opendp`` ≥ 0.16): the release is ρ-zCDP (``loss_of(rho=ρ)``), with ρ the
largest value whose zCDP → approximate-DP conversion by OpenDP's ``make_zCDP_to_approxDP`` gives
ε(δ) <= ε (bisection on ρ). The privacy unit is ``unit_of(contributions=1)``, OpenDP's symmetric
distance 1 (**add/remove-one**) for ``--adjacency add-remove``, and ``unit_of(changes=1)`` (OpenDP's
change-one distance, **replace-one**) for ``--adjacency replace-one``: OpenDP then does the replace-one
accounting itself. Measured on a small table: with ``changes=1`` every marginal's noise standard
deviation is twice that of ``contributions=1`` at the same ρ (the same as ``contributions=2``), i.e.
the benchmark's rule ρ' = ρ/4 (group privacy for zCDP, k = 2) — recorded per run as ``unit``.
Known failure (OpenDP 0.16.0): on Adult at ε = 1 (15 columns, ρ = 0.030556595) MST's own split of its
selection budget overshoots it by two ulps and OpenDP refuses the query ("insufficient budget for
query: 0.0015278297500000001 > 0.0015278297499999988"); smaller ρ by up to 1e-6 relative fail the same
way; so do Adult at ε = 10 ("0.08913478079999994 > 0.0891347807999999") and the 1980 census at
ε = 5.1 (δ = 1e-6: "0.023979799549999986 > 0.02397979954999998"). Such a run is recorded as failed,
saying so. Adult at ε = 5.1 and CPS 1988 (ε = 5.1) ran.
Noise comes from OpenDP's samplers (its own entropy, not the seed); ``--seed`` seeds numpy's global
generator, which mbi 1.1 uses for sampling rows.

Usage::

    .venv-opendp-synth/bin/python benchmarks/peers/opendp_runner.py --synth mst \
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
from _coding import decode, encode, peak_rss_mb, peer_arguments

SYNTHS = ["mst", "aim"]


def epsilon_of_rho(rho: float, delta: float) -> float:
    """ε at ``delta`` of a ρ-zCDP release, by OpenDP's ``make_zCDP_to_approxDP``."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    gauss = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0)
    # scale 1 and sensitivity sqrt(2ρ) is exactly ρ-zCDP
    curve = dp.c.make_zCDP_to_approxDP(gauss).map(math.sqrt(2.0 * rho))
    return float(curve.epsilon(delta))


def rho_for(epsilon: float, delta: float, tol: float = 1e-10) -> float:
    """The largest ρ (bisection) whose OpenDP conversion gives ε(δ) <= ``epsilon``."""
    lo, hi = 0.0, max(1.0, epsilon)
    while epsilon_of_rho(hi, delta) <= epsilon:
        hi *= 2
    while hi - lo > tol * hi:
        mid = 0.5 * (lo + hi)
        if mid > 0 and epsilon_of_rho(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def main(argv: list[str] | None = None) -> int:
    """Fit OpenDP's MST or AIM on the coded table, sample, decode, write the CSV and the run facts."""
    a = peer_arguments(__doc__.splitlines()[0], SYNTHS).parse_args(argv)
    warnings.filterwarnings("ignore")
    import importlib.metadata as md

    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    random.seed(a.seed)
    np.random.seed(a.seed)
    schema = json.loads(Path(a.schema).read_text())
    df = pd.read_csv(a.input)
    codes, infos = encode(df, schema, a.bins)
    frame: dict[str, Any] = {}
    keys: dict[str, list[int]] = {}
    for info in infos:
        c = codes[info["name"]].to_numpy()
        k = int(info["k"])
        series = pl.Series(info["name"], c, dtype=pl.Int64)
        if info["missing"]:  # the missing code becomes OpenDP's null key
            series = pl.Series(info["name"], [None if v == k else int(v) for v in c], dtype=pl.Int64)
        frame[info["name"]] = series
        keys[info["name"]] = list(range(k if info["missing"] else int(info["n_codes"])))
    lf = pl.DataFrame(frame).lazy()

    # Rounded down to 9 decimals: OpenDP's inner budget split of a ρ with a long binary expansion can
    # overshoot it by one ulp and refuse the query ("insufficient budget").
    rho = math.floor(rho_for(a.epsilon, a.delta) * 1e9) / 1e9
    if a.adjacency == "add-remove":
        unit, privacy_unit = {"contributions": 1}, dp.unit_of(contributions=1)
    else:
        unit, privacy_unit = {"changes": 1}, dp.unit_of(changes=1)
    algorithm = dp.mbi.MST() if a.synth == "mst" else dp.mbi.AIM()
    t0 = time.perf_counter()
    ctx = dp.Context.compositor(data=lf, privacy_unit=privacy_unit, privacy_loss=dp.loss_of(rho=rho))
    table = ctx.query(rho=rho).contingency_table(keys=keys, algorithm=algorithm).release()
    t1 = time.perf_counter()
    n = a.n or len(df)
    synth = table.synthesize(rows=n, method=a.sample_method).to_pandas()
    rng = np.random.default_rng(a.seed + 7919)
    out_codes: dict[str, np.ndarray] = {}
    redrawn: dict[str, int] = {}
    for info in infos:
        col = synth[info["name"]]
        isna = col.isna().to_numpy()
        vals = np.array(col.to_numpy(dtype=float, na_value=np.nan), dtype=float)  # writable copy
        if info["missing"]:
            vals = np.where(isna, info["k"], vals)
        elif isna.any():
            pool = vals[~isna]
            vals[isna] = rng.choice(pool, int(isna.sum())) if pool.size else 0
            redrawn[info["name"]] = int(isna.sum())
        out_codes[info["name"]] = vals
    out = decode(pd.DataFrame(out_codes), infos, rng)
    t2 = time.perf_counter()
    out.to_csv(a.output, index=False)
    meta = {
        "system": f"opendp-{a.synth}"
        + ("-iid" if a.sample_method == "sample" else "")
        + ("-replace-one" if a.adjacency == "replace-one" else ""),
        "epsilon": a.epsilon,
        "delta": a.delta,
        "adjacency": a.adjacency,
        "unit": unit,
        "rho_run": rho,
        "epsilon_of_rho_at_delta": epsilon_of_rho(rho, a.delta),
        "sample_method": a.sample_method,
        "versions": {k: md.version(k) for k in ("opendp", "mbi", "polars", "numpy")},
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "peak_rss_mb": peak_rss_mb(),
        "n_codes": {i["name"]: i["n_codes"] for i in infos},
        "domain_size_log10": float(sum(math.log10(i["n_codes"]) for i in infos)),
        "nulls_redrawn": redrawn,
        "note": "all keys from the declared schema (no key discovery, delta = 0 in the release); "
        "OpenDP's own accounting for the privacy unit",
    }
    if a.meta:
        Path(a.meta).write_text(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
