"""Large-domain code path of ``pgd`` (issue 16, part 2): an ACS-shaped schema with high-cardinality
categorical columns, run on the labelled SYNTHETIC ACS fixture.

The schema is ACSIncome's (``tabpriv/acs_schemas/ACSIncome.schema.json``) with two nominal codes
declared as categories instead of integer ranges, from the code *formats* of the ACS PUMS 2018 data
dictionary (public; the official code lists could not be had offline, so each list is a superset):

* ``OCCP``: 0 (N/A) and every multiple of 10 from 10 to 9920 (993 codes; the dictionary has ~530);
* ``POBP``: every code from 1 to 554 (554 codes; the dictionary has ~220).

Their pair has 550,122 cells; ``AGEP`` and ``WKHP`` keep their integer ranges. The data are
:func:`tabpriv.acs.make_acs_fixture`'s random values: figures from them are **code-path checks, not
quality claims** (every output says so).

    OMP_NUM_THREADS=1 nice python -m benchmarks.bench_pgd_highcard [--rows 20000] \
        [--systems pgd independent mst aim]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from tabpriv.schema import Column, Schema

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "pgd_highcard.json"
NOTE = (
    "SYNTHETIC ACS FIXTURE (tabpriv.acs.make_acs_fixture: random values in the dictionary's code ranges, "
    "NOT census data): code-path and cost checks only, never a quality claim."
)

#: OCCP: 0 = N/A, then the 4-digit occupation code format 0010..9920 in steps of 10 (a superset).
OCCP_CODES: tuple[int, ...] = (0, *range(10, 9921, 10))
#: POBP: place-of-birth codes 001..554 (a superset of the dictionary's ~220 codes).
POBP_CODES: tuple[int, ...] = tuple(range(1, 555))


def highcard_schema() -> Schema:
    """ACSIncome's public schema with OCCP and POBP declared categorical (993 and 554 codes)."""
    from tabpriv.acs import acs_schema

    base = acs_schema("ACSIncome")
    cols = []
    for c in base.columns:
        if c.name == "OCCP":
            c = Column("OCCP", "categorical", categories=OCCP_CODES, description="OCCP code format, superset")
        elif c.name == "POBP":
            c = Column("POBP", "categorical", categories=POBP_CODES, description="POBP code range, superset")
        cols.append(c)
    return Schema(tuple(cols))


def fixture_table(root: Path, n: int, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """The synthetic fixture's ACSIncome rows (``n`` person rows before folktables' filter)."""
    from tabpriv.acs import acs, make_acs_fixture

    make_acs_fixture(root, n=n, seed=seed)
    df, _ = acs("ACSIncome", root_dir=root)
    schema = highcard_schema()
    return schema.conform(df), schema


def _run(system: str, df: pd.DataFrame, schema: Schema, eps: float, seed: int) -> dict[str, Any]:
    from tabpriv import Synthesizer
    from tabpriv.evaluation.discretize import discretize
    from tabpriv.evaluation.marginals import marginal_tvds

    params: dict[str, Any] = {"target": "PINCP"} if system in ("pgd", "mst", "aim") else {}
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        synth = Synthesizer(
            backend=system, epsilon=eps, delta=1e-6, schema=schema, device="cpu", random_state=seed,
            backend_params=params,
        )  # fmt: skip
        synth.fit(df)
        out = synth.sample(len(df))
    except Exception as exc:  # a refusal is a result here
        return {
            "system": system,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-600:],
        }
    c1, t1 = time.process_time(), time.perf_counter()
    m = marginal_tvds(discretize(df, schema, 20), discretize(out, schema, 20), max_triples=20)
    return {
        "system": system,
        "two_way_tvd": m["two_way"]["mean"],
        "one_way_tvd": m["one_way"]["mean"],
        "cpu_s": c1 - c0,
        "wall_s": t1 - t0,
        "timings": getattr(synth.backend_, "timings_", None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "load_avg_1min": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--epsilon", type=float, default=5.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", nargs="*", default=["pgd", "independent", "mst", "aim"])
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        df, schema = fixture_table(Path(tmp), args.rows, args.seed)
    rows: list[dict[str, Any]] = []
    sizes = {c.name: len(c.categories or ()) for c in schema.columns if c.kind == "categorical"}
    doc = {
        "note": NOTE,
        "rows": len(df),
        "epsilon": args.epsilon,
        "delta": 1e-6,
        "seed": args.seed,
        "categorical_sizes": sizes,
        "command": "python -m benchmarks.bench_pgd_highcard "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "results": rows,
    }
    for system in args.systems:
        res = _run(system, df, schema, args.epsilon, args.seed)
        print(json.dumps({k: v for k, v in res.items() if k != "trace"}), flush=True)
        rows.append(res)
        OUT.write_text(json.dumps(doc, indent=2, default=str) + "\n")  # after each system
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
