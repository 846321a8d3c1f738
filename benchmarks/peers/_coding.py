"""Public coding of a table for the marginal-synthesizer peers (smartnoise, dpmm, OpenDP).

Shared by ``smartnoise_runner.py``, ``dpmm_runner.py`` and ``opendp_runner.py``, which each run in
their own virtual environment: this module needs only numpy and pandas (never tabpriv) and reads the
schema JSON directly.

Public bounds, no budget on preprocessing: every column is turned into integer codes from the
*declared* schema only, with the levels of tabpriv's evaluation (``tabpriv.evaluation.discretize``):
categories in their declared order, integers with at most ``max(100, b)`` values kept exact (the rule
of ``tabpriv.transformers.levels``), other numbers cut into at most ``b`` bins on the declared
``[lower, upper]`` with round inner edges (``b`` = the column's ``bins`` or ``--bins``; whole-number
edges for integers), a missing value as one extra code. Synthetic codes are decoded back: categories
by index, binned numbers uniformly at random within their bin (integers: uniformly over the whole
numbers of the bin). The number of codes of every column (the
domain) is a function of the schema alone, so a peer that is handed it never looks at the data for it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

#: ``tabpriv.transformers.levels.DEFAULT_MAX_LEVELS``: integers with at most this many values stay exact.
MAX_LEVELS = 100
#: ``tabpriv.evaluation.discretize._NICE_MANTISSAS``.
_NICE_MANTISSAS = (10, 15, 20, 25, 30, 40, 50, 60, 80)


def _steps(raw: float, integer: bool) -> Iterator[tuple[int, int]]:
    """A copy of ``tabpriv.evaluation.discretize._steps`` (this module cannot import tabpriv)."""
    e = math.floor(math.log10(raw)) - 2 if raw > 0 else 0
    while True:
        for m in _NICE_MANTISSAS:
            if integer and e < 0 and not (e == -1 and m % 10 == 0):  # not a whole width
                continue
            w = m * 10.0**e if e >= 0 else m / 10.0**-e
            if w >= raw:
                yield m, e
        e += 1


def _bin_edges(lower: float, upper: float, bins: int, integer: bool) -> list[float]:
    """A copy of ``tabpriv.evaluation.discretize.bin_edges`` (same floats, so the same bins)."""
    lo, hi = float(lower), float(upper)
    top = hi + 1.0 if integer else hi
    raw = (hi - lo) / bins
    for m, e in _steps(raw, integer):
        w = m * 10.0**e if e >= 0 else m / 10.0**-e
        first, last = math.floor(lo / w), math.ceil(top / w)
        if last - first > 4 * bins + 4:
            continue
        ks = range(first, last + 1)
        inner = [k * m * 10.0**e if e >= 0 else k * m / 10.0**-e for k in ks]
        edges = [lo, *(v for v in inner if lo < v < top), top]
        if len(edges) > 2 and edges[1] - edges[0] < w / 2:
            del edges[1]
        if len(edges) > 2 and edges[-1] - edges[-2] < w / 2:
            del edges[-2]
        if len(edges) - 1 <= bins:
            return edges
    raise AssertionError("unreachable")  # pragma: no cover


def _levels(col: dict[str, Any], bins: int) -> dict[str, Any]:
    """Public coding of one column: kind, number of codes and how to decode them.

    The same levels as tabpriv's evaluation (``tabpriv.evaluation.discretize``): an integer column
    with at most ``max(100, b)`` values (``b`` = the column's ``bins`` or ``bins``) keeps one code per
    value; other numbers get at most ``b`` bins with round inner edges over the declared
    ``[lower, upper]`` (``edges``; an integer column's are whole numbers ending at ``upper + 1``).
    """
    kind = col["kind"]
    if kind == "categorical":
        return {"mode": "cat", "k": len(col["categories"]), "cats": col["categories"]}
    lo, hi = float(col["lower"]), float(col["upper"])
    b = int(col.get("bins") or bins)
    if kind == "integer" and hi - lo + 1 <= max(MAX_LEVELS, b):
        return {"mode": "exact", "k": int(hi - lo + 1), "lo": lo, "hi": hi}
    edges = _bin_edges(lo, hi, b, kind == "integer")
    return {"mode": "bin", "k": len(edges) - 1, "lo": lo, "hi": hi, "int": kind == "integer", "edges": edges}


def _bin_code(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Bin of each number, with the very formula of ``tabpriv.evaluation.discretize``.

    ``searchsorted(edges, x, side="right") - 1`` clipped to ``[0, k)`` (bin ``i`` is
    ``[edges[i], edges[i + 1])``; the last bin also holds ``upper``).
    """
    edges = np.asarray(info["edges"], dtype=float)
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, info["k"] - 1).astype(np.int64)


def _first_integer(c: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Smallest whole number of bin ``c`` of an integer column (``upper + 1`` for ``c >= k``)."""
    edges = np.asarray(info["edges"], dtype=float)
    return edges[np.clip(c, 0, info["k"])]


def _cat_key(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return ("b", bool(v))
    if isinstance(v, int | float | np.integer | np.floating):
        return ("n", float(v))
    if isinstance(v, str):
        if v in ("True", "False"):
            return ("b", v == "True")
        try:
            return ("n", float(v))
        except ValueError:
            return ("s", v)
    return ("s", str(v))


def encode(df: pd.DataFrame, schema: dict[str, Any], bins: int) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Integer codes per column (from the declared schema only) and the per-column coding info."""
    out: dict[str, np.ndarray] = {}
    infos: list[dict[str, Any]] = []
    for col in schema["columns"]:
        info = _levels(col, bins)
        info["name"] = col["name"]
        info["missing"] = bool(col.get("missing", False))
        s = df[col["name"]]
        isna = s.isna().to_numpy()
        codes = np.zeros(len(s), dtype=np.int64)
        if info["mode"] == "cat":
            lookup = {_cat_key(c): i for i, c in enumerate(info["cats"])}
            vals = s.to_numpy(dtype=object)
            for i, v in enumerate(vals):
                if not isna[i]:
                    codes[i] = lookup[_cat_key(v)]
        else:
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            x = np.where(isna, info["lo"], np.clip(x, info["lo"], info["hi"]))
            if info["mode"] == "exact":
                codes = np.rint(x - info["lo"]).astype(np.int64)
            else:
                codes = _bin_code(x, info)
        n_codes = info["k"] + (1 if info["missing"] else 0)
        if info["missing"]:
            codes = np.where(isna, info["k"], codes)
        info["n_codes"] = n_codes
        out[col["name"]] = codes
        infos.append(info)
    return pd.DataFrame(out), infos


def decode(codes: pd.DataFrame, infos: list[dict[str, Any]], rng: np.random.Generator) -> pd.DataFrame:
    """Back from codes to values: categories by index, binned numbers uniformly within the bin."""
    out: dict[str, Any] = {}
    for info in infos:
        c = np.clip(np.rint(codes[info["name"]].to_numpy(dtype=float)), 0, info["n_codes"] - 1)
        c = c.astype(np.int64)
        isna = info["missing"] & (c == info["k"])
        c = np.where(isna, 0, c)
        if info["mode"] == "cat":
            cats = info["cats"]
            vals: Any = np.array([cats[i] for i in c], dtype=object)
        elif info["mode"] == "exact":
            vals = (info["lo"] + c).astype(float)
        else:
            edges = np.asarray(info["edges"], dtype=float)
            if info["int"]:
                # Uniform over the integers of bin c: edges[c] .. edges[c + 1] - 1 (whole numbers).
                first = _first_integer(c, info)
                last = np.maximum(_first_integer(c + 1, info) - 1, first)
                x = first + np.floor(rng.random(len(c)) * (last - first + 1))
            else:
                a, b = edges[c], edges[c + 1]
                x = np.clip(a + rng.random(len(c)) * (b - a), info["lo"], info["hi"])
                # Rounding can put a draw next to an edge into the neighbouring bin: use the middle.
                x = np.where(_bin_code(x, info) == c, x, 0.5 * (a + b))
            vals = np.clip(x, info["lo"], info["hi"])
        series = pd.Series(vals, dtype=object if info["mode"] == "cat" else float)
        series[isna] = np.nan
        if info["mode"] == "exact" or (info["mode"] == "bin" and info["int"]):
            series = series.round().astype("Int64")
        out[info["name"]] = series
    return pd.DataFrame(out)


def matched_epsilon(
    epsilon: float, delta: float, rho_of: Any, factor: float = 4.0, tol: float = 1e-9
) -> float:
    """The ε' with ``rho_of(ε', δ) = rho_of(ε, δ) / factor`` (bisection; ``rho_of`` increasing in ε).

    With ``rho_of = snsynth.utils.cdp_rho`` and ``factor = 4``, running an add/remove ρ-zCDP peer at ε'
    makes it (ε, δ)-DP under replace-one (group privacy for zCDP, k = 2).
    """
    target = rho_of(epsilon, delta) / factor
    lo, hi = 0.0, epsilon
    while hi - lo > tol * epsilon:
        mid = 0.5 * (lo + hi)
        if rho_of(mid, delta) < target:
            lo = mid
        else:
            hi = mid
    return lo  # rho_of(lo) <= target: never more than the replace-one budget


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB (``VmHWM``; ``ru_maxrss`` as a fallback).

    ``ru_maxrss`` survives ``execve`` on Linux, so it would include the spawning parent's size.
    """
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            peak_kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    return peak_kb / 1024.0


def peer_arguments(description: str, synths: list[str]) -> argparse.ArgumentParser:
    """The command line every peer runner shares (``--synth``, ``--input``, ``--epsilon``, ...)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--synth", choices=synths, required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--meta", default=None)
    p.add_argument("--adjacency", choices=["add-remove", "replace-one"], default="add-remove")
    p.add_argument(
        "--sample-method",
        choices=["round", "sample"],
        default="round",
        help="how rows are drawn from the fitted graphical model: mbi's randomized rounding of the "
        "marginals to counts (its default) or i.i.d. sampling",
    )
    return p
