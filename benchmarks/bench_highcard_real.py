"""A quality figure on a REAL high-cardinality table (issue 16): Adult rows, columns crossed by a public rule.

No ACS person file can be had on this machine, so no real high-cardinality table exists here. This
script builds one from **real rows** (UCI Adult, its own train / test split) by crossing columns into a
few high-cardinality categorical columns. The rule is public: a crossed column's categories are the
product of the **declared** category lists of its factors (``datasets/adult.schema.json``), in the
schema's order, with one ``?`` level for a factor the schema declares ``missing`` (read off the schema,
never off the data):

* ``job``    = workclass (8 + ?) x occupation (14 + ?) x education (16)   = 2,160 levels;
* ``origin`` = native-country (41 + ?) x race (5) x sex (2)               =   420 levels;
* ``family`` = marital-status (7) x relationship (6)                     =    42 levels;
* ``age`` (74 values), ``hours-per-week`` (99 values) and ``income`` (2) as declared.

The crossing is a bijection between the original columns and the crossed ones (:func:`uncross` undoes
:func:`cross`), so a synthetic crossed table is also scored on the 11 original columns. Every output is
labelled :data:`LABEL`: it is **not** an ACS figure.

Each system (``pgd``, ``independent``, ``mst``, ``aim``; ``target = income`` for those that take one, as
the grid passes it) fits and samples in its own subprocess (``python -m benchmarks _child``, the grid's
child) under a CPU-time limit (``RLIMIT_CPU``: a run past it is recorded as "did not finish in X
CPU-s") and a wall-clock limit. The parent scores each synthetic table twice with the grid's
:func:`benchmarks.runner.score` (crossed view and un-crossed view, both against the real hold-out,
target ``income``). Results: ``benchmarks/results/highcard_real.{json,md}``.

    cd /work/main && OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.bench_highcard_real \\
        [--systems pgd independent mst aim] [--seeds 0 1 2] [--cpu-limit 1200] [--wall-limit 3600]
    .venv/bin/python -m benchmarks.bench_highcard_real --tables   # rebuild the .md from the .json
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabpriv.schema import Column, Schema

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT_JSON = RESULTS / "highcard_real.json"
OUT_MD = RESULTS / "highcard_real.md"
LABEL = (
    "real rows, columns crossed by a public rule (benchmarks/bench_highcard_real.py): UCI Adult's real "
    "rows with columns crossed into single categorical columns whose categories are the products of "
    "the schema's declared categories. NOT an ACS figure."
)

#: The crossed columns and their factors (Adult column names), in output order.
CROSSINGS: dict[str, tuple[str, ...]] = {
    "job": ("workclass", "occupation", "education"),
    "origin": ("native-country", "race", "sex"),
    "family": ("marital-status", "relationship"),
}
#: ``--crossing wide``: race moves into ``job`` (10,800 levels), so ``job x hours-per-week`` has
#: 1,069,200 cells, above every marginal backend's default ``max_cells`` (10^6): no backend measures it.
WIDE_CROSSINGS: dict[str, tuple[str, ...]] = {
    "job": ("workclass", "occupation", "education", "race"),
    "origin": ("native-country", "sex"),
    "family": ("marital-status", "relationship"),
}
#: Adult columns kept as they are.
KEEP: tuple[str, ...] = ("age", "hours-per-week", "income")
TARGET = "income"
#: Separator of the factors in a crossed category; no declared category may contain it.
SEP = "|"
#: The level of a factor whose schema declares ``missing`` (no declared category may equal it).
MISSING_TOKEN = "?"
#: The marginal backends' limits at their defaults (tabpriv.backends.marginal): the largest marginal
#: measured (every marginal backend) and aim's largest junction tree (cells).
MAX_CELLS = 1_000_000
AIM_MAX_MODEL_CELLS = 2_500_000
#: Integer columns with at most this many values keep one level per value (marginal backends, evaluation).
MAX_LEVELS = 100
ADULT_SPEC = {"loader": "adult", "schema": "datasets/adult.schema.json", "target": TARGET}


# -- the public crossing ----------------------------------------------------------------------------
def factor_levels(col: Column) -> tuple[str, ...]:
    """A factor's levels in a crossing: its declared categories (as text), then ``?`` if it may be missing.

    Raises:
        ValueError: The column is not categorical, or a category holds the separator or equals ``?``.

    """
    if col.kind != "categorical" or not col.categories:
        raise ValueError(f"{col.name!r} is not a categorical column with declared categories")
    cats = tuple(str(c) for c in col.categories)
    bad = [c for c in cats if SEP in c or c == MISSING_TOKEN]
    if bad:
        raise ValueError(
            f"{col.name!r}: categories {bad} clash with the crossing's {SEP!r} / {MISSING_TOKEN!r}"
        )
    return (*cats, MISSING_TOKEN) if col.missing else cats


def crossed_categories(base: Schema, factors: tuple[str, ...]) -> tuple[str, ...]:
    """The categories of a crossed column: the product of its factors' levels, first factor slowest."""
    return tuple(SEP.join(t) for t in itertools.product(*(factor_levels(base[f]) for f in factors)))


def crossed_schema(base: Schema) -> Schema:
    """The crossed table's schema, built from the base schema alone (public)."""
    cols: list[Column] = []
    for name, factors in CROSSINGS.items():
        cols.append(
            Column(
                name,
                "categorical",
                categories=crossed_categories(base, factors),
                description=f"{' x '.join(factors)} crossed (declared categories; '?' = missing)",
            )
        )
    cols += [base[k] for k in KEEP]
    return Schema(tuple(cols))


def original_schema(base: Schema) -> Schema:
    """The base schema restricted to the columns the crossed table holds (in the base's order)."""
    used = {f for fs in CROSSINGS.values() for f in fs} | set(KEEP)
    return base.select([n for n in base.names if n in used])


def _factor_codes(series: pd.Series, col: Column) -> np.ndarray:
    """Codes of one factor: declared category index, missing -> the ``?`` level."""
    levels = factor_levels(col)
    cats = [str(c) for c in col.categories or ()]
    s = series.astype(object)
    missing = s.isna().to_numpy()
    codes = np.full(len(s), -1, dtype=np.int64)
    codes[~missing] = pd.Categorical(s[~missing].astype(str), categories=cats).codes
    if (codes[~missing] < 0).any() or (missing.any() and not col.missing):
        raise ValueError(f"{col.name!r} holds values outside its declared categories or missing values")
    codes[missing] = len(levels) - 1
    return codes


def cross(df: pd.DataFrame, base: Schema) -> pd.DataFrame:
    """The crossed table of ``df`` (a table of the base schema): one crossed code per row (mixed radix)."""
    out: dict[str, Any] = {}
    for name, factors in CROSSINGS.items():
        code = np.zeros(len(df), dtype=np.int64)
        for f in factors:
            code = code * len(factor_levels(base[f])) + _factor_codes(df[f], base[f])
        categories: Any = list(crossed_categories(base, factors))
        out[name] = pd.Categorical.from_codes(code, categories=categories)
    frame = pd.DataFrame(out)
    for k in KEEP:
        frame[k] = df[k].to_numpy()
    return crossed_schema(base).conform(frame)


def uncross(df: pd.DataFrame, base: Schema) -> pd.DataFrame:
    """The original columns of a crossed table (the inverse of :func:`cross`; ``?`` -> missing)."""
    cols: dict[str, Any] = {}
    for name, factors in CROSSINGS.items():
        code = pd.Categorical(
            df[name].astype(object), categories=list(crossed_categories(base, factors))
        ).codes
        code = np.asarray(code, dtype=np.int64)
        if (code < 0).any():
            raise ValueError(f"{name!r} holds values outside its crossed categories")
        for f in reversed(factors):
            levels = factor_levels(base[f])
            code, rem = np.divmod(code, len(levels))
            vals = np.array(levels, dtype=object)[rem]
            vals[vals == MISSING_TOKEN] = None
            cols[f] = vals
    for k in KEEP:
        cols[k] = df[k].to_numpy()
    schema = original_schema(base)
    return schema.conform(pd.DataFrame({n: cols[n] for n in schema.names}))


def level_counts(schema: Schema) -> dict[str, int]:
    """Levels per column under the marginal backends' rule (declared categories; integers per value)."""
    out = {}
    for c in schema.columns:
        if c.kind == "categorical":
            out[c.name] = len(c.categories or ())
        else:
            assert c.lower is not None and c.upper is not None
            n = int(c.upper - c.lower + 1)
            if n > MAX_LEVELS or c.missing:
                raise ValueError(f"{c.name!r}: this script expects per-value integers without missing values")
            out[c.name] = n
    return out


def pair_cells(schema: Schema) -> dict[str, int]:
    """Cells of every two-way marginal of ``schema``, largest first."""
    lv = level_counts(schema)
    pairs = {f"{a} x {b}": lv[a] * lv[b] for a, b in itertools.combinations(lv, 2)}
    return dict(sorted(pairs.items(), key=lambda kv: -kv[1]))


# -- datasets ---------------------------------------------------------------------------------------
def views() -> tuple[Any, Any, Schema]:
    """The crossed and the original view of Adult's train / hold-out split, and the base schema."""
    from benchmarks.runner import Dataset, load_dataset

    ds = load_dataset("adult", dict(ADULT_SPEC))
    base = ds.schema
    orig = original_schema(base)
    train_o = orig.conform(ds.train[orig.names])
    hold_o = orig.conform(ds.holdout[orig.names])
    train_x, hold_x = cross(train_o, base), cross(hold_o, base)
    for a, b in ((train_o, train_x), (hold_o, hold_x)):  # the crossing is a bijection on these rows
        pd.testing.assert_frame_equal(uncross(b, base), a, check_categorical=True)
    split = dict(ds.split)
    crossed = Dataset("adult-crossed", train_x, hold_x, crossed_schema(base), Path(), TARGET, split)
    original = Dataset("adult-uncrossed", train_o, hold_o, orig, ds.schema_path, TARGET, split)
    return crossed, original, base


# -- one run ----------------------------------------------------------------------------------------
def parse_system(system: str) -> tuple[str, dict[str, Any]]:
    """``backend`` or ``backend@key=value,...``: a variant with public parameters (``pgd@max_cells=1000``)."""
    backend, _, rest = system.partition("@")
    extra: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        extra[k] = json.loads(v)
    return backend, extra


def _cpu_limiter(cpu_s: int) -> Callable[[], None]:
    def pre() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 30))

    return pre


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fit_sample(
    system: str, ds: Any, seed: int, work: Path, eps: float, delta: float, cpu_limit: int, wall_limit: int
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Fit + sample one tabpriv backend in the grid's child process, under CPU and wall limits."""
    from benchmarks.runner import child_spec, public_backend_params
    from tabpriv.io import read_table, write_table

    train_csv = work / "train.csv"
    if not train_csv.exists():
        write_table(ds.train, train_csv)
    backend, extra = parse_system(system)
    tag = f"{system.replace('@', '_').replace('=', '').replace(',', '_')}_s{seed}"
    out_csv, meta = work / f"{tag}.synth.csv", work / f"{tag}.meta.json"
    params = {**public_backend_params(backend, ds), **extra}
    spec = child_spec(ds, backend, params, eps, delta, seed, train_csv, out_csv, meta)
    spec_path = work / f"{tag}.spec.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "benchmarks", "_child", str(spec_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["TABPRIV_BENCH_THREADS"] = "1"
    facts: dict[str, Any] = {"backend_params": params, "cpu_limit_s": cpu_limit, "wall_limit_s": wall_limit}
    facts["load_avg_1min_before"] = os.getloadavg()[0]
    c0, t0 = _children_cpu(), time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=wall_limit,
            preexec_fn=_cpu_limiter(cpu_limit), check=False,
        )  # fmt: skip
        rc: int | None = proc.returncode
        stderr = proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stderr = None, (exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr or ""))
    facts["cpu_s"] = _children_cpu() - c0
    facts["wall_s"] = time.perf_counter() - t0
    facts["load_avg_1min_after"] = os.getloadavg()[0]
    facts["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if rc is None:
        facts["status"] = f"did not finish in {facts['wall_s']:.0f} s wall ({facts['cpu_s']:.0f} CPU-s)"
        return None, facts
    if rc == -24 or (rc == -9 and facts["cpu_s"] >= cpu_limit):  # SIGXCPU (then SIGKILL): RLIMIT_CPU
        facts["status"] = f"did not finish in {facts['cpu_s']:.0f} CPU-s (RLIMIT_CPU {cpu_limit} s)"
        return None, facts
    if rc != 0 or not out_csv.exists():
        tail = stderr.strip()[-1500:]
        last = tail.splitlines()[-1] if tail else ""
        facts["status"] = f"refused/failed (exit {rc}): {last}"
        facts["stderr_tail"] = tail
        return None, facts
    facts.update(json.loads(meta.read_text()))
    facts.pop("privacy_report", None)
    facts["status"] = "ok"
    privacy = json.loads(meta.read_text()).get("privacy_report")
    facts["_privacy"] = privacy
    return read_table(out_csv, ds.schema), facts


def _view_figures(report: dict[str, Any], base: Schema | None) -> dict[str, Any]:
    """Headline figures of one scored view; for the original view, pairs within / across crossings."""
    from benchmarks.runner import headline

    out = headline(report)
    two = report["marginals"]["two_way"]
    out["worst_pairs"] = two.get("worst", [])
    out["one_way_per_column"] = report["marginals"]["one_way"].get("per_column")
    names, mat = two["columns"], np.asarray(two["matrix"])
    group = {f: g for g, fs in CROSSINGS.items() for f in fs}
    within: list[float] = []
    across: list[float] = []
    pairs = {}
    for i, j in itertools.combinations(range(len(names)), 2):
        pairs[f"{names[i]} x {names[j]}"] = float(mat[i, j])
        gi, gj = group.get(names[i]), group.get(names[j])
        (within if gi is not None and gi == gj else across).append(float(mat[i, j]))
    out["pair_tvd"] = pairs
    if base is not None:
        out["tvd_2way_within_crossings"] = float(np.mean(within)) if within else None
        out["tvd_2way_across_crossings"] = float(np.mean(across)) if across else None
        out["pairs_within_crossings"] = len(within)
    return out


def light_score(ds: Any, synthetic: pd.DataFrame, seed: int, bins: int) -> dict[str, Any]:
    """The marginal and utility sections of :func:`benchmarks.runner.score`, without membership attacks.

    The same calls with the same arguments as :func:`tabpriv.evaluation.evaluate` makes for its
    ``marginals`` and ``utility`` sections (which run before, and independently of, the membership
    attacks), so the 1/2/3-way TVDs and LR AUCs are those of ``score``; the attacks (over 2,600
    one-hot features on the crossed view) are most of ``score``'s time and are not reported here.
    """
    from tabpriv.evaluation.discretize import discretize
    from tabpriv.evaluation.marginals import marginal_tvds
    from tabpriv.evaluation.utility import utility_scores

    real, _ = ds.schema.validate(ds.train)
    hold = ds.schema.validate(ds.holdout)[0]
    rc, sc = discretize(real, ds.schema, bins), discretize(synthetic, ds.schema, bins)
    return {
        "marginals": marginal_tvds(rc, sc, max_triples=500, random_state=seed),
        "utility": utility_scores(real, synthetic, hold, ds.schema, ds.target, random_state=seed),
    }


def evaluate_run(
    crossed: Any,
    original: Any,
    base: Schema,
    synth_x: pd.DataFrame,
    seed: int,
    privacy: Any,
    light: bool = False,
) -> dict[str, Any]:
    """Score a synthetic crossed table on the crossed view and, un-crossed, on the original view.

    ``light``: :func:`light_score` (no membership attacks) instead of :func:`benchmarks.runner.score`.
    """
    from benchmarks.runner import score

    c0, t0 = time.process_time(), time.perf_counter()
    synth_o = uncross(synth_x, base)
    if light:
        rep_x, rep_o = light_score(crossed, synth_x, seed, 20), light_score(original, synth_o, seed, 20)
    else:
        rep_x, rep_o = score(crossed, synth_x, seed, 20, privacy), score(original, synth_o, seed, 20, privacy)
    return {
        "evaluation": "light_score (membership attacks skipped)" if light else "benchmarks.runner.score",
        "crossed": _view_figures(rep_x, None),
        "original": _view_figures(rep_o, base),
        "eval_cpu_s": time.process_time() - c0,
        "eval_wall_s": time.perf_counter() - t0,
    }


def _compare(a: dict[str, Any], b: dict[str, Any], run: str) -> dict[str, Any]:
    """The headline figures of two scorings of the same synthetic table, and whether they agree."""
    keys = ("tvd_1way", "tvd_2way", "tvd_3way", "lr_auc_tstr", "lr_auc_trtr")
    out: dict[str, Any] = {"run": run}
    same = True
    for view in ("crossed", "original"):
        pa = {k: a[view].get(k) for k in keys}
        pb = {k: b[view].get(k) for k in keys}
        out[view] = {a["evaluation"]: pa, b["evaluation"]: pb}
        same = same and pa == pb
    out["identical"] = same
    return out


# -- results file -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked() -> Iterator[dict[str, Any]]:
    """The results document, read and written under a file lock (two invocations may run at once)."""
    lock = OUT_JSON.with_suffix(".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        doc = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
        yield doc
        tmp = OUT_JSON.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp.replace(OUT_JSON)
        fcntl.flock(fh, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        lock.unlink()


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _header(crossed: Any, original: Any, base: Schema, eps: float, delta: float) -> dict[str, Any]:
    pc = pair_cells(crossed.schema)
    lv = level_counts(crossed.schema)
    return {
        "label": LABEL,
        "epsilon": eps,
        "delta": delta,
        "adjacency": "replace-one",
        "split": {k: v for k, v in crossed.split.items() if not k.startswith("clipped")},
        "n_train": len(crossed.train),
        "n_holdout": len(crossed.holdout),
        "crossings": {k: list(v) for k, v in CROSSINGS.items()},
        "kept": list(KEEP),
        "target": TARGET,
        "levels": lv,
        "one_way_cells_total": sum(lv.values()),
        "pair_cells": pc,
        "limits": {
            "max_cells (pgd, mst, aim default)": MAX_CELLS,
            "aim max_model_cells (default)": AIM_MAX_MODEL_CELLS,
            "pairs above max_cells": [p for p, c in pc.items() if c > MAX_CELLS],
            "note": (
                "aim adds a candidate only while its junction tree fits max_model_cells x (share of rho "
                "spent so far); a pair of C cells needs C / 2.5e6 of rho spent before it can be chosen"
            ),
        },
        "real_train_vs_holdout": {},
        "evaluation": (
            "benchmarks.runner.score (tabpriv.evaluation.evaluate, eval bins 20, hold-out = adult.test)"
        ),
        "eval_bins": 20,
    }


# -- tables -----------------------------------------------------------------------------------------
def _med(vals: list[float]) -> float | None:
    v = [x for x in vals if isinstance(x, int | float) and math.isfinite(x)]
    return float(statistics.median(v)) if v else None


def _f(x: Any, p: int = 4) -> str:
    return "–" if not isinstance(x, int | float) else f"{x:.{p}f}"


def _systems(runs: dict[str, Any]) -> list[str]:
    """The systems present: the four of the brief first, then variants (``backend@...``) in name order."""
    present = {r["system"] for r in runs.values()}
    main = [s for s in ("pgd", "independent", "mst", "aim") if s in present]
    return main + sorted(present - set(main))


def markdown(doc: dict[str, Any]) -> str:
    """The results table (medians over the seeds that finished; per-seed values in brackets)."""
    runs = doc.get("runs", {})
    systems = _systems(runs)
    lines = [
        "# High-cardinality quality figure on real rows (issue 16)",
        "",
        f"**{doc['label']}**",
        "",
        f"ε = {doc['epsilon']}, δ = {doc['delta']} (replace-one); "
        f"train = adult.data ({doc['n_train']:,} rows), "
        f"hold-out = adult.test ({doc['n_holdout']:,} rows); target `{doc['target']}` passed to pgd/mst/aim; "
        f"evaluation: {doc['evaluation']}. Commit {doc.get('commit')}.",
        "",
        "Levels: "
        + ", ".join(f"`{k}` {v:,}" for k, v in doc["levels"].items())
        + f" (one-way total {doc['one_way_cells_total']:,}). Largest pairs (cells): "
        + ", ".join(f"{k} {v:,}" for k, v in list(doc["pair_cells"].items())[:4])
        + ". Pairs above max_cells (measured by no backend at its defaults): "
        + (", ".join(doc["limits"]["pairs above max_cells"]) or "none")
        + f". Limits at the defaults: max_cells {MAX_CELLS:,} (every marginal backend), aim's junction tree "
        f"≤ {AIM_MAX_MODEL_CELLS:,} × share of ρ spent.",
        "",
    ]
    base = doc.get("real_train_vs_holdout", {})
    for view, title in (
        (
            "crossed",
            "crossed columns (6): "
            + ", ".join(f"{k} = {' x '.join(v)}" for k, v in doc["crossings"].items()),
        ),
        ("original", "original columns after un-crossing (11)"),
    ):
        lines += [
            f"## {title}",
            "",
            "| system | seeds | 1-way TVD ↓ | 2-way TVD ↓ | 3-way TVD ↓ | LR AUC (TSTR) ↑ |"
            + (" 2-way within / across crossings |" if view == "original" else "")
            + " fit+sample CPU-s | wall s | peak RSS MB | load 1-min |",
            "|---|---|---|---|---|---|" + ("---|" if view == "original" else "") + "---|---|---|---|",
        ]
        b = base.get(view, {})
        if b:
            lines.append(
                f"| real hold-out vs train (baseline) | – | {_f(b.get('tvd_1way'))} | "
                f"{_f(b.get('tvd_2way'))} | "
                f"{_f(b.get('tvd_3way'))} | {_f(b.get('lr_auc_trtr'), 3)} (TRTR) |"
                + (" – |" if view == "original" else "")
                + " – | – | – | – |"
            )
        for s in systems:
            rs = sorted((r for r in runs.values() if r["system"] == s), key=lambda r: r["seed"])
            ok = [r for r in rs if r.get("status") == "ok"]
            if not ok:
                why = "; ".join(f"seed {r['seed']}: {r.get('status')}" for r in rs)
                lines.append(f"| {s} | – | {why} |")
                continue

            def cell(key: str, p: int = 4, _ok: list[dict[str, Any]] = ok, _view: str = view) -> str:
                vals = [r[_view].get(key) for r in _ok]
                m = _med(vals)
                if len(vals) == 1:
                    return _f(m, p)
                return f"{_f(m, p)} ({', '.join(_f(v, p) for v in vals)})"

            wa = ""
            if view == "original":
                wa = f" {cell('tvd_2way_within_crossings')} / {cell('tvd_2way_across_crossings')} |"
            cpu = _med([r["cpu_s"] for r in ok])
            wall = _med([r["wall_s"] for r in ok])
            rss = max(r.get("peak_rss_mb") or 0 for r in ok)
            loads = [x for r in ok for x in (r.get("load_avg_1min_before"), r.get("load_avg_1min_after"))]
            lines.append(
                f"| {s} | {','.join(str(r['seed']) for r in ok)} | {cell('tvd_1way')} | {cell('tvd_2way')} | "
                f"{cell('tvd_3way')} | {cell('lr_auc_tstr', 3)} |{wa} {_f(cpu, 0)} | {_f(wall, 0)} | "
                f"{rss:.0f} | "
                f"{min(loads):.1f}–{max(loads):.1f} |"
            )
            bad = [r for r in rs if r.get("status") != "ok"]
            for r in bad:
                lines.append(f"| {s} seed {r['seed']} | {r.get('status')} |")
        lines.append("")
    margins = doc.get("margins")
    if margins:
        lines += ["## pgd's margin (median 2-way TVD; negative = pgd better)", ""]
        for view, m in margins.items():
            for other, d in m.items():
                lines.append(
                    f"* {view}: pgd {_f(d['pgd'])} vs {other} {_f(d['other'])}: difference {d['diff']:+.4f}, "
                    f"ratio {d['ratio']:.2f}; LR AUC pgd {_f(d.get('auc_pgd'), 3)} "
                    f"vs {_f(d.get('auc_other'), 3)}"
                )
        lines.append("")
    light = sorted(k for k, r in runs.items() if str(r.get("evaluation", "")).startswith("light"))
    if light:
        chk = doc.get("checks", {}).get("light_check")
        lines += [
            f"Scored with `light_score` (score()'s marginal and utility sections, no membership attacks): "
            f"{', '.join(light)}; the others with score()."
            + (
                f" Check on {chk['run']}: headline figures of both scorings identical: {chk['identical']}."
                if chk
                else ""
            ),
            "",
        ]
    lines += [
        "CPU-s: user + system time of the fit + sample subprocess (RUSAGE_CHILDREN), one BLAS/torch thread, "
        "nice 10; wall s and the load average of this 2-core machine, shared with other sessions, at the "
        "start and end of each run: wall times are not speeds. Peak RSS: the child's VmHWM.",
        "",
    ]
    return "\n".join(lines)


def margins(doc: dict[str, Any]) -> dict[str, Any]:
    """pgd's median 2-way TVD against each other system that finished, per view."""
    runs = list(doc.get("runs", {}).values())
    out: dict[str, Any] = {}
    for view in ("crossed", "original"):
        med: dict[str, tuple[float | None, float | None]] = {}
        for s in _systems(doc.get("runs", {})):
            ok = [r for r in runs if r["system"] == s and r.get("status") == "ok"]
            if ok:
                med[s] = (_med([r[view]["tvd_2way"] for r in ok]), _med([r[view]["lr_auc_tstr"] for r in ok]))
        if "pgd" not in med or med["pgd"][0] is None:
            continue
        p, pa = med["pgd"]
        assert p is not None
        out[view] = {
            s: {"pgd": p, "other": o, "diff": p - o, "ratio": p / o, "auc_pgd": pa, "auc_other": oa}
            for s, (o, oa) in med.items()
            if s != "pgd" and o
        }
    return out


def write_md() -> None:
    """Rebuild the markdown from the JSON document."""
    with _locked() as doc:
        doc["margins"] = margins(doc)
        OUT_MD.write_text(markdown(doc))


# -- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", nargs="*", default=["pgd", "independent", "mst", "aim"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--epsilon", type=float, default=5.1)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--cpu-limit", type=int, default=1200, help="CPU seconds per fit + sample (RLIMIT_CPU)")
    ap.add_argument("--wall-limit", type=int, default=3600, help="wall seconds per fit + sample")
    ap.add_argument("--tables", action="store_true", help="only rebuild the markdown from the JSON")
    ap.add_argument("--light", action="store_true", help="score without membership attacks (light_score)")
    ap.add_argument(
        "--check-light", action="store_true", help="on the first run, also score() and compare the figures"
    )
    ap.add_argument(
        "--crossing",
        choices=("default", "wide"),
        default="default",
        help="wide: WIDE_CROSSINGS, *_wide.{json,md}",
    )
    args = ap.parse_args(argv)
    if args.crossing == "wide":  # module-level settings of this run (a script, not a library)
        global OUT_JSON, OUT_MD
        CROSSINGS.clear()
        CROSSINGS.update(WIDE_CROSSINGS)
        OUT_JSON, OUT_MD = RESULTS / "highcard_real_wide.json", RESULTS / "highcard_real_wide.md"
    if args.tables:
        write_md()
        return 0
    crossed, original, base = views()
    command = "python -m benchmarks.bench_highcard_real " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="highcard_real_") as tmp:
        work = Path(tmp)
        crossed.schema_path = work / "adult_crossed.schema.json"
        crossed.schema.to_json(crossed.schema_path)
        with _locked() as doc:
            kept = {k: doc[k] for k in ("runs", "real_train_vs_holdout") if doc.get(k)}
            doc.update(_header(crossed, original, base, args.epsilon, args.delta))
            doc.update(kept)
            doc["commit"] = _git_commit()
            if not doc["real_train_vs_holdout"]:
                c0 = time.process_time()
                from benchmarks.runner import score

                for view, ds in (("crossed", crossed), ("original", original)):
                    if args.light:  # train vs hold-out: the marginals score() calls its hold-out baseline
                        rep = light_score(ds, ds.holdout, 0, 20)
                        m = rep["marginals"]
                    else:
                        rep = score(ds, ds.train, 0, 20, None)
                        m = rep["marginals_holdout_baseline"]
                    doc["real_train_vs_holdout"][view] = {
                        "tvd_1way": m["one_way"]["mean"],
                        "tvd_2way": m["two_way"]["mean"],
                        "tvd_3way": m["three_way"]["mean"],
                        "lr_auc_trtr": _view_figures(rep, None)["lr_auc_trtr"],
                    }
                doc["real_train_vs_holdout"]["evaluation"] = "light_score" if args.light else "score"
                doc["real_train_vs_holdout"]["eval_cpu_s"] = time.process_time() - c0
        doc_checks: dict[str, Any] = {}
        for seed in args.seeds:
            for system in args.systems:
                synth, facts = fit_sample(
                    system, crossed, seed, work, args.epsilon, args.delta, args.cpu_limit, args.wall_limit
                )
                privacy = facts.pop("_privacy", None)
                row: dict[str, Any] = {"system": system, "seed": seed, "command": command, **facts}
                if synth is not None:
                    row.update(evaluate_run(crossed, original, base, synth, seed, privacy, args.light))
                    if args.check_light and "light_check" not in doc_checks:
                        full = evaluate_run(crossed, original, base, synth, seed, privacy, not args.light)
                        doc_checks["light_check"] = _compare(row, full, f"{system}/{seed}")
                    if isinstance(privacy, dict):
                        row["epsilon_reported"] = privacy.get("epsilon")
                brief = {
                    k: row.get(k) for k in ("system", "seed", "status", "cpu_s", "wall_s", "peak_rss_mb")
                }
                if synth is not None:
                    brief["tvd_2way"] = (row["crossed"]["tvd_2way"], row["original"]["tvd_2way"])
                    brief["auc"] = (row["crossed"]["lr_auc_tstr"], row["original"]["lr_auc_tstr"])
                print(json.dumps(brief, default=str), flush=True)
                with _locked() as doc:
                    doc.setdefault("runs", {})[f"{system}/{seed}"] = row
                    doc.setdefault("checks", {}).update(doc_checks)
    write_md()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
