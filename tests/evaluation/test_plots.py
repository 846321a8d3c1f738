"""The report's figures and the worst-pair tables: readable axes, stated scales, honest tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tabpriv.evaluation.discretize import discretize, level_labels
from tabpriv.evaluation.marginals import marginal_tvds
from tabpriv.evaluation.pairs import MAX_CATEGORIES, MAX_ORDERED, worst_pair_tables
from tabpriv.evaluation.plots import (
    MAX_LABEL,
    _ordered_panel,
    _short,
    _tick_positions,
    concentrated,
    distributions_figure,
    worst_pairs_figure,
)
from tabpriv.schema import Column, Schema

PNG = b"\x89PNG\r\n\x1a\n"


def _wide_schema() -> Schema:
    """A 30-category column, a per-value integer with 73 values, a heavy-tailed money column."""
    return Schema(
        (
            Column("country", "categorical", categories=tuple(f"country-{i:02d}" for i in range(30))),
            Column("age", "integer", lower=18, upper=90),
            Column("income", "continuous", lower=0.0, upper=1_000_000.0, missing=True),
            Column("label", "categorical", categories=("no", "yes")),
        )
    )


def _wide_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = np.r_[0.6, np.full(29, 0.4 / 29)]
    income = np.minimum(rng.pareto(1.5, n) * 10_000, 1_000_000.0)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "country": rng.choice([f"country-{i:02d}" for i in range(30)], n, p=p),
            "age": rng.integers(18, 91, n),
            "income": income,
            "label": rng.choice(["no", "yes"], n),
        }
    )


@pytest.fixture
def wide() -> tuple[Schema, dict]:  # type: ignore[type-arg]
    schema = _wide_schema()
    real, syn = discretize(_wide_frame(800, 0), schema), discretize(_wide_frame(600, 1), schema)
    mg = marginal_tvds(real, syn)
    worst = [
        {"columns": [a, b], "tvd": mg["two_way"]["matrix"][i][j]}
        for a, b, i, j in (("country", "age", 0, 1), ("age", "income", 1, 2), ("country", "label", 0, 3))
    ]
    return schema, {"real": real, "syn": syn, "worst": worst, "marginals": mg}


def test_pair_tables_are_shares_of_the_same_cells(wide) -> None:  # type: ignore[no-untyped-def]
    schema, d = wide
    tables = worst_pair_tables(schema, d["real"], d["syn"], d["worst"], max_pairs=2)
    assert [t["columns"] for t in tables] == [["country", "age"], ["age", "income"]]  # max_pairs
    json.dumps(tables)  # JSON-ready
    for t in tables:
        real, syn = np.array(t["real"]), np.array(t["synthetic"])
        assert real.shape == syn.shape == (len(t["labels"][0]), len(t["labels"][1]))
        assert real.sum() == pytest.approx(1.0) and syn.sum() == pytest.approx(1.0)  # nothing dropped
        assert t["tvd_shown"] == pytest.approx(0.5 * np.abs(real - syn).sum())
        assert t["tvd_shown"] <= t["tvd"] + 1e-12  # merging cells never adds distance
        for labels in t["labels"]:
            assert len(set(labels)) == len(labels)
    country, age = tables[0]["labels"]
    assert len(country) == MAX_CATEGORIES and country[-1] == f"other ({30 - MAX_CATEGORIES + 1})"
    assert "country-00" in country  # the most frequent category is kept
    assert len(age) <= MAX_ORDERED and age[0] == "18–19" and age[-1].endswith("–90")
    assert any("age: 73 levels" in n for n in tables[0]["notes"])
    assert tables[1]["labels"][1][-1] == "(missing)"  # income has missing values: kept, last


def test_pair_table_without_merging_is_the_report_s_tvd(wide) -> None:  # type: ignore[no-untyped-def]
    schema, _ = wide
    small = Schema((schema.columns[3], schema.columns[2]))  # label (2) x income (binned, <= 20 bins)
    r = discretize(_wide_frame(500, 2), small)
    s = discretize(_wide_frame(500, 3), small)
    tvd = marginal_tvds(r, s)["two_way"]["matrix"][0][1]
    (t,) = worst_pair_tables(small, r, s, [{"columns": ["label", "income"], "tvd": tvd}])
    assert t["notes"] == [] and t["tvd_shown"] == pytest.approx(tvd)
    assert t["labels"][1] == level_labels(small.columns[1], r.levels[1])[: len(t["labels"][1])]


def test_worst_pairs_figure_renders(wide) -> None:  # type: ignore[no-untyped-def]
    schema, d = wide
    results = {"worst_pairs": worst_pair_tables(schema, d["real"], d["syn"], d["worst"])}
    png = worst_pairs_figure(results)
    assert png is not None and png.startswith(PNG)
    assert worst_pairs_figure({"worst_pairs": []}) is None
    assert worst_pairs_figure({}) is None


def test_distributions_figure_renders_every_kind(wide) -> None:  # type: ignore[no-untyped-def]
    from tabpriv.evaluation.core import _distributions

    schema, d = wide
    results = {
        "distributions": _distributions(schema, d["real"], d["syn"]),
        "marginals": d["marginals"],
    }
    assert distributions_figure(results).startswith(PNG)


def test_concentration_rule() -> None:
    tail = np.r_[0.9, 0.05, np.full(18, 0.05 / 18)]  # 2 of 20 bins hold 95%
    flat = np.full(20, 0.05)
    assert concentrated(tail) and concentrated(flat, tail) and not concentrated(flat)
    assert not concentrated(np.array([0.9, 0.05, 0.05]))  # fewer than 8 levels: linear


def test_log_share_axis_is_said_on_the_axis() -> None:
    from matplotlib.figure import Figure

    labels = [f"{10 * i}–{10 * i + 9}" for i in range(20)]
    tail = np.r_[0.9, 0.05, np.full(18, 0.05 / 18)]
    ax = Figure().subplots()
    label = _ordered_panel(ax, labels, tail, tail)
    assert ax.get_yscale() == "log" and "log scale" in label
    ax2 = Figure().subplots()
    assert _ordered_panel(ax2, labels, np.full(20, 0.05), np.full(20, 0.05)) == "share of rows"
    assert ax2.get_yscale() == "linear"


def test_ticks_keep_first_last_mode_and_special_levels() -> None:
    labels = [str(v) for v in range(1, 100)] + ["(missing)"]  # hours 1..99 per value
    real = np.full(100, 0.005)
    real[39] = 0.47  # 40 hours
    syn = np.full(100, 0.005)
    syn[37] = 0.3  # 38 hours
    ticks = _tick_positions(labels, real, syn)
    assert {0, 98, 39, 99} <= set(ticks)  # first, last, real mode, missing
    assert len(ticks) <= 14
    assert {labels[i] for i in ticks} >= {"10", "20", "60", "90"}  # multiples of 10 between them
    assert _tick_positions(labels[:12], real[:12], syn[:12]) == list(range(12))  # few: all labelled


def test_long_names_are_cut_with_an_ellipsis() -> None:
    name = "Outlying-US(Guam-USVI-etc)"
    assert len(_short(name)) == MAX_LABEL and _short(name).endswith("…")
    assert _short("Married-civ-spouse") == "Married-civ-spouse"


def test_merging_keeps_spikes_apart() -> None:
    """A value holding >= 5% of rows (40 hours) stays its own level when an axis is merged."""
    schema = Schema(
        (Column("hours", "integer", lower=1, upper=99), Column("sex", "categorical", categories=("f", "m")))
    )
    rng = np.random.default_rng(0)
    hours = np.where(rng.random(600) < 0.45, 40, rng.integers(1, 100, 600))
    real = discretize(pd.DataFrame({"hours": hours, "sex": rng.choice(["f", "m"], 600)}), schema)
    spread = np.where(hours == 40, rng.integers(38, 42, 600), hours)  # the spike smeared over 38-41
    syn = discretize(pd.DataFrame({"hours": spread, "sex": rng.choice(["f", "m"], 600)}), schema)
    tvd = marginal_tvds(real, syn)["two_way"]["matrix"][0][1]
    (t,) = worst_pair_tables(schema, real, syn, [{"columns": ["hours", "sex"], "tvd": tvd}])
    hours_labels = t["labels"][0]
    assert "40" in hours_labels and len(hours_labels) <= MAX_ORDERED + 6
    assert "40 kept apart" in t["notes"][0] or "40," in t["notes"][0]
    # the smeared spike stays visible: most of the real 40-hour mass is off in the synthetic table
    k = hours_labels.index("40")
    real_t, syn_t = np.array(t["real"]), np.array(t["synthetic"])
    assert real_t[k].sum() > 0.4 and syn_t[k].sum() < 0.25
    assert t["tvd_shown"] > 0.5 * tvd
