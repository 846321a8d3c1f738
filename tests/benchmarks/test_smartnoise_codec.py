"""Tests of the smartnoise peer's public coding (``benchmarks/peers/smartnoise_runner.py``).

The peer runs in its own venv; its ``encode``/``decode`` use only numpy and pandas, so they are
imported and tested here from the main venv without smartnoise. Properties (Hypothesis, random
small schemas, and the Adult schema with real Adult rows where ``../shared/datasets`` exists):
categories and exact integers round-trip exactly, binned numbers decode into their own bin (integers
to whole numbers), missing stays missing, codes lie in ``[0, n_codes)``, the coding depends on the
schema only, and the levels are exactly those of ``tabpriv.evaluation.discretize``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabpriv.evaluation.discretize import discretize
from tabpriv.schema import Schema

from .conftest import REPO, SHARED

RUNNER_PATH = REPO / "benchmarks" / "peers" / "smartnoise_runner.py"
ADULT_SCHEMA = REPO / "datasets" / "adult.schema.json"
BINS = 20  # the runner's --bins default and the benchmark's eval_bins


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smartnoise_runner_under_test", RUNNER_PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sn = _load_module()


def test_imports_without_smartnoise_or_torch() -> None:
    """The module imports numpy and pandas only at top level (smartnoise and torch inside main)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(RUNNER_PATH)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "bad = [k for k in ('snsynth', 'torch', 'opacus', 'mbi', 'tabpriv') if k in sys.modules]\n"
        "assert not bad, bad\n"
        "assert callable(m.encode) and callable(m.decode) and callable(m.main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# -- helpers ----------------------------------------------------------------------------------------
def _roundtrip(
    df: pd.DataFrame, schema: dict[str, Any], seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    codes, infos = sn.encode(df, schema, BINS)
    out = sn.decode(codes, infos, np.random.default_rng(seed))
    return codes, out, infos


def _check_roundtrip(df: pd.DataFrame, schema: dict[str, Any]) -> None:
    codes, out, infos = _roundtrip(df, schema)
    assert list(out.columns) == [c["name"] for c in schema["columns"]]
    assert len(out) == len(df)
    tab_schema = Schema.from_dict(schema)
    eval_before = discretize(df, tab_schema, BINS)
    eval_after = discretize(out, tab_schema, BINS)
    assert not eval_before.out_of_schema and not eval_after.out_of_schema  # decoded rows fit the schema
    for j, (col, info) in enumerate(zip(schema["columns"], infos, strict=True)):
        name = col["name"]
        c = codes[name].to_numpy()
        assert c.dtype.kind == "i"
        assert ((c >= 0) & (c < info["n_codes"])).all(), name
        assert info["n_codes"] == info["k"] + int(bool(col.get("missing", False)))
        isna_in, isna_out = df[name].isna().to_numpy(), out[name].isna().to_numpy()
        np.testing.assert_array_equal(isna_out, isna_in, err_msg=f"{name}: missing must stay missing")
        np.testing.assert_array_equal(c[isna_in], info["k"])  # the extra code, only for missing
        assert (c[~isna_in] < info["k"]).all()
        # the same levels as the evaluation: codes of the peer == the evaluation's codes
        lv = eval_before.levels[j]
        assert info["k"] == lv.n_values, name
        np.testing.assert_array_equal(
            np.where(isna_in, lv.missing_code, c), eval_before.codes[:, j], err_msg=name
        )
        # every decoded value sits in the level it was coded from
        np.testing.assert_array_equal(eval_after.codes[:, j], eval_before.codes[:, j], err_msg=name)
        present = ~isna_in
        if info["mode"] == "cat":
            assert out[name][present].tolist() == df[name][present].tolist(), name
        elif info["mode"] == "exact":
            np.testing.assert_array_equal(
                out[name][present].to_numpy(dtype=float), df[name][present].to_numpy(dtype=float)
            )
        else:
            vals = out[name][present].to_numpy(dtype=float)
            assert ((vals >= info["lo"]) & (vals <= info["hi"])).all(), name
            if info["int"]:
                assert (vals == np.floor(vals)).all(), name
            recoded = sn.encode(out, schema, BINS)[0][name].to_numpy()
            np.testing.assert_array_equal(recoded, c, err_msg=name)


# -- Hypothesis: random small schemas ---------------------------------------------------------------
@st.composite
def column_and_values(draw: st.DrawFn, index: int, n: int) -> tuple[dict[str, Any], list[Any]]:
    kind = draw(st.sampled_from(["categorical", "integer", "continuous"]))
    missing = draw(st.booleans())
    col: dict[str, Any] = {"name": f"c{index}", "kind": kind}
    if kind == "categorical":
        cats = draw(
            st.one_of(
                st.lists(st.text("abcxyz", min_size=1, max_size=4), min_size=1, max_size=6, unique=True),
                st.lists(st.integers(-50, 50), min_size=1, max_size=6, unique=True),
            )
        )
        col["categories"] = cats
        value = st.sampled_from(cats)
    elif kind == "integer":
        lo = draw(st.integers(-10_000, 10_000))
        hi = lo + draw(st.integers(1, 3_000))
        col |= {"lower": lo, "upper": hi}
        value = st.integers(lo, hi)
    else:
        flo = draw(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))
        fhi = flo + draw(st.floats(1e-3, 1e4, allow_nan=False, allow_infinity=False))
        col |= {"lower": flo, "upper": fhi}
        value = st.floats(flo, fhi, allow_nan=False, allow_infinity=False)
    if kind != "categorical" and draw(st.booleans()):
        col["bins"] = draw(st.integers(1, 40))
    if missing:
        col["missing"] = True
        value = st.one_of(value, st.none())
    return col, draw(st.lists(value, min_size=n, max_size=n))


@st.composite
def schema_and_frame(draw: st.DrawFn) -> tuple[dict[str, Any], pd.DataFrame]:
    n = draw(st.integers(1, 25))
    p = draw(st.integers(1, 4))
    cols, data = [], {}
    for i in range(p):
        col, values = draw(column_and_values(i, n))
        cols.append(col)
        if col["kind"] == "categorical":
            data[col["name"]] = pd.Series(values, dtype=object).where(pd.notna(values), np.nan)
        else:
            data[col["name"]] = pd.Series([np.nan if v is None else v for v in values], dtype=float)
    return {"tabpriv_schema": 1, "columns": cols}, pd.DataFrame(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_frame())
def test_random_schemas_roundtrip(case: tuple[dict[str, Any], pd.DataFrame]) -> None:
    schema, df = case
    _check_roundtrip(df, schema)


@settings(max_examples=40, deadline=None)
@given(schema_and_frame(), st.integers(0, 2**32 - 1))
def test_coding_uses_only_the_schema(case: tuple[dict[str, Any], pd.DataFrame], seed: int) -> None:
    """Same codes for a row whatever other rows are passed; the coding info never sees the data."""
    schema, df = case
    codes, infos = sn.encode(df, schema, BINS)
    rows = np.random.default_rng(seed).permutation(len(df))[: max(1, len(df) // 2)]
    sub_codes, sub_infos = sn.encode(df.iloc[rows].reset_index(drop=True), schema, BINS)
    assert json.dumps(sub_infos, sort_keys=True, default=str) == json.dumps(
        infos, sort_keys=True, default=str
    )
    pd.testing.assert_frame_equal(sub_codes, codes.iloc[rows].reset_index(drop=True))


@settings(max_examples=40, deadline=None)
@given(schema_and_frame(), st.integers(0, 2**32 - 1))
def test_any_codes_decode_inside_the_schema(case: tuple[dict[str, Any], pd.DataFrame], seed: int) -> None:
    """Whatever codes a synthesizer returns (in range), the decoded table fits the declared schema."""
    schema, df = case
    _, infos = sn.encode(df, schema, BINS)
    rng = np.random.default_rng(seed)
    n = 30
    codes = pd.DataFrame({i["name"]: rng.integers(0, i["n_codes"], n) for i in infos})
    out = sn.decode(codes, infos, rng)
    tab_schema = Schema.from_dict(schema)
    ev = discretize(out, tab_schema, BINS)
    assert not ev.out_of_schema
    for j, info in enumerate(infos):
        c = codes[info["name"]].to_numpy()
        expected = np.where(c == info["k"], ev.levels[j].missing_code, c) if info["missing"] else c
        check = np.ones(len(c), dtype=bool)
        if info["mode"] == "bin" and info["int"]:
            # Rounding in the evaluation's bin formula can leave a bin with no whole number in it
            # (e.g. 1 / 49 * 49 < 1); such a code cannot be decoded into its own bin.
            ints = pd.DataFrame({info["name"]: np.arange(info["lo"], info["hi"] + 1)})
            reachable = np.unique(sn.encode(ints, {"columns": [schema["columns"][j]]}, BINS)[0].to_numpy())
            check = np.isin(c, reachable) | (c == info["k"])
        np.testing.assert_array_equal(ev.codes[check, j], expected[check], err_msg=info["name"])
    tab_schema.validate(out)  # raises on anything outside the schema


def test_values_on_bin_edges_get_the_evaluation_s_bin() -> None:
    """Regression: dividing by the bin width put edge values into the other bin than the evaluation
    (e.g. 1 in [0, 49] with 49 bins: 1 / 1.0 = 1 but 1 / 49 * 49 = 0.999...)."""
    lo, hi, b = 0, 49, 49
    schema = {
        "tabpriv_schema": 1,
        "columns": [
            {"name": "i", "kind": "integer", "lower": lo, "upper": hi, "bins": b},
            {"name": "x", "kind": "continuous", "lower": -3.3, "upper": 7.1, "bins": 7},
        ],
    }
    edges = np.linspace(-3.3, 7.1, 8)
    xs = np.concatenate([edges, np.nextafter(edges, np.inf)[:-1], np.nextafter(edges, -np.inf)[1:]])
    xs = np.resize(xs, hi - lo + 1)
    df = pd.DataFrame({"i": np.arange(lo, hi + 1), "x": xs})
    _check_roundtrip(df, schema)


def test_decode_is_seeded() -> None:
    schema = {
        "tabpriv_schema": 1,
        "columns": [{"name": "x", "kind": "continuous", "lower": 0.0, "upper": 1.0}],
    }
    df = pd.DataFrame({"x": np.linspace(0, 1, 50)})
    a = _roundtrip(df, schema, seed=3)[1]
    b = _roundtrip(df, schema, seed=3)[1]
    c = _roundtrip(df, schema, seed=4)[1]
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_text_booleans_and_numbers_map_to_declared_categories() -> None:
    """A CSV read back gives 'True'/'False' text or floats; they code to the declared categories."""
    schema = {
        "tabpriv_schema": 1,
        "columns": [
            {"name": "t", "kind": "categorical", "categories": [False, True]},
            {"name": "k", "kind": "categorical", "categories": [1, 2, 3], "missing": True},
        ],
    }
    df = pd.DataFrame({"t": ["True", "False", True], "k": [1.0, np.nan, 3.0]})
    codes, infos = sn.encode(df, schema, BINS)
    assert codes["t"].tolist() == [1, 0, 1]
    assert codes["k"].tolist() == [0, 3, 2]
    out = sn.decode(codes, infos, np.random.default_rng(0))
    assert out["t"].tolist() == [True, False, True]
    assert out["k"][0] == 1 and pd.isna(out["k"][1]) and out["k"][2] == 3


# -- Adult ------------------------------------------------------------------------------------------
def test_adult_schema_levels_match_the_evaluation() -> None:
    schema = json.loads(ADULT_SCHEMA.read_text())
    tab = Schema.from_dict(schema)
    levels = discretize(pd.DataFrame({c.name: [] for c in tab.columns}), tab, BINS).levels
    for col, lv in zip(schema["columns"], levels, strict=True):
        info = sn._levels(col, BINS)
        assert info["k"] == lv.n_values, col["name"]
        assert (info["mode"] == "bin") == (lv.edges is not None), col["name"]


@pytest.mark.skipif(not (SHARED / "adult" / "adult.data").is_file(), reason="../shared/datasets/adult absent")
def test_adult_rows_roundtrip() -> None:
    from tabpriv.datasets import load_adult

    schema = json.loads(ADULT_SCHEMA.read_text())
    df = load_adult("train").sample(2000, random_state=0).reset_index(drop=True)
    df, _ = Schema.from_dict(schema).validate(df, clip=True)
    assert df.isna().any().any()  # Adult has missing workclass/occupation/native-country
    _check_roundtrip(df, schema)
    n_exact = sum(sn._levels(c, BINS)["mode"] == "exact" for c in schema["columns"])
    n_bin = sum(sn._levels(c, BINS)["mode"] == "bin" for c in schema["columns"])
    assert n_exact >= 1 and n_bin >= 1  # both numeric paths are exercised
    assert math.isfinite(sum(math.log10(i["n_codes"]) for i in sn.encode(df, schema, BINS)[1]))


def test_runner_file_is_where_the_benchmark_expects_it() -> None:
    from benchmarks import runner

    assert Path(runner.SMARTNOISE_RUNNER) == RUNNER_PATH


# -- adjacency: the replace-one variant of the peers ------------------------------------------------
def _rho_closed_form(eps: float, delta: float) -> float:
    """ρ with ρ + 2·sqrt(ρ·log(1/δ)) = ε (the classic zCDP → (ε, δ) bound), increasing in ε."""
    lg = math.log(1.0 / delta)
    return (math.sqrt(lg + eps) - math.sqrt(lg)) ** 2


@pytest.mark.parametrize("eps", [0.5, 1.0, 5.1, 10.0])
def test_matched_epsilon_quarters_rho_and_never_exceeds(eps: float) -> None:
    e2 = sn.matched_epsilon(eps, 1e-5, _rho_closed_form)
    target = _rho_closed_form(eps, 1e-5) / 4
    assert 0 < e2 < eps
    assert _rho_closed_form(e2, 1e-5) <= target  # the peer never gets more than the replace-one budget
    assert _rho_closed_form(e2, 1e-5) == pytest.approx(target, rel=1e-6)


def test_runner_names_the_peer_variants() -> None:
    from benchmarks import runner

    assert runner.smartnoise_variant("smartnoise-mst") == ("mst", "add-remove")
    assert runner.smartnoise_variant("smartnoise-aim-replace-one") == ("aim", "replace-one")


@pytest.mark.skipif(not (REPO / ".venv-smartnoise" / "bin" / "python").exists(), reason="no smartnoise venv")
def test_matched_epsilon_with_smartnoise_s_own_rho() -> None:
    """With snsynth's cdp_rho (the function MST and AIM use), ε' has a quarter of the ρ of ε."""
    code = (
        "import importlib.util, sys\n"
        "from snsynth.utils import cdp_rho\n"
        f"spec = importlib.util.spec_from_file_location('r', {str(RUNNER_PATH)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "e2 = m.matched_epsilon(5.1, 1e-5, cdp_rho)\n"
        "print(e2, cdp_rho(e2, 1e-5) / cdp_rho(5.1, 1e-5))\n"
    )
    py = REPO / ".venv-smartnoise" / "bin" / "python"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True, timeout=300)
    e2, ratio = map(float, out.stdout.split())
    assert 0 < e2 < 5.1
    assert ratio == pytest.approx(0.25, rel=1e-6) and ratio <= 0.25
