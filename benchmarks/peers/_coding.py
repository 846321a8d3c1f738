"""Public coding of a table for the marginal-synthesizer peers (smartnoise, dpmm, OpenDP).

Shared by ``smartnoise_runner.py``, ``dpmm_runner.py`` and ``opendp_runner.py``, which each run in
their own virtual environment: this module needs only numpy and pandas (never tabpriv) and reads the
schema JSON directly.

Public bounds, no budget on preprocessing: every column is turned into integer codes from the
*declared* schema only: categories in their declared order, integers with at most ``b`` values kept
exact, other numbers cut into ``b`` equal-width bins on the declared ``[lower, upper]`` (``b`` = the
column's ``bins`` or ``--bins``, as in tabpriv's evaluation), a missing value as one extra code.
Synthetic codes are decoded back: categories by index, binned numbers uniformly at random within their
bin (integers: uniformly over the whole numbers of the bin). The number of codes of every column (the
domain) is a function of the schema alone, so a peer that is handed it never looks at the data for it.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd


def _levels(col: dict[str, Any], bins: int) -> dict[str, Any]:
    """Public coding of one column: kind, number of codes and how to decode them.

    The same levels as tabpriv's evaluation (``tabpriv.evaluation.discretize``): an integer column
    with at most ``b`` values (``b`` = the column's ``bins`` or ``bins``) keeps one code per value;
    other numbers get ``b`` equal-width bins over the declared ``[lower, upper]``.
    """
    kind = col["kind"]
    if kind == "categorical":
        return {"mode": "cat", "k": len(col["categories"]), "cats": col["categories"]}
    lo, hi = float(col["lower"]), float(col["upper"])
    b = int(col.get("bins") or bins)
    if kind == "integer" and hi - lo + 1 <= b:
        return {"mode": "exact", "k": int(hi - lo + 1), "lo": lo, "hi": hi}
    return {"mode": "bin", "k": b, "lo": lo, "hi": hi, "int": kind == "integer"}


def _bin_code(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Bin of each number, with the very formula of ``tabpriv.evaluation.discretize``.

    ``floor((x - lower) / (upper - lower) * b)`` clipped to ``[0, b)``; computing it any other way
    (e.g. dividing by the bin width) puts some values that lie on a bin edge into the other bin.
    """
    lo, hi, k = info["lo"], info["hi"], info["k"]
    return np.clip(np.floor((x - lo) / (hi - lo) * k), 0, k - 1).astype(np.int64)


def _first_integer(c: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Smallest whole number ``v`` in ``[lower, upper]`` whose bin is ``c`` or later.

    Starts from the exact-arithmetic answer and corrects it by whole steps so that it agrees with
    :func:`_bin_code` despite rounding (values for ``c >= b`` are ``upper + 1``).
    """
    lo, hi, k = info["lo"], info["hi"], info["k"]
    v = np.clip(np.ceil(lo + c * ((hi - lo) / k)), lo, hi + 1)
    for _ in range(3):
        down = (v - 1 >= lo) & (_bin_code(v - 1, info) >= c)
        up = (v <= hi) & (_bin_code(v, info) < c)
        if not (down.any() or up.any()):
            break
        v = v - down + up
    return v


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
            width = (info["hi"] - info["lo"]) / info["k"]
            if info["int"]:
                # Uniform over the integers whose bin is c (first(c) .. first(c + 1) - 1; the last
                # bin also holds the upper bound itself), bin edges exactly as _bin_code draws them.
                first = _first_integer(c, info)
                last = np.where(c == info["k"] - 1, info["hi"], _first_integer(c + 1, info) - 1)
                last = np.maximum(last, first)
                x = first + np.floor(rng.random(len(c)) * (last - first + 1))
            else:
                x = np.clip(info["lo"] + (c + rng.random(len(c))) * width, info["lo"], info["hi"])
                # Rounding can put a draw next to an edge into the neighbouring bin: use the middle.
                x = np.where(_bin_code(x, info) == c, x, info["lo"] + (c + 0.5) * width)
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
