"""Accounting of the marginal backends (``mst``, ``aim``), recomputed independently of the library.

Every figure is recomputed here from its definition, never through the helper under test:

* a count marginal under replace-one moves one count down and one up: L2 sensitivity sqrt(2), so the
  discrete Gaussian costs ``rho = 2 / (2 sigma^2)`` (Canonne-Kamath-Steinke 2020, Theorem 4);
* a noisy-max selection of Gumbel scale ``b`` on scores of replace-one sensitivity ``D`` (non-monotonic)
  costs ``(2 D / b)^2 / 8`` (Cesar-Rogers 2021 bounded range), compared with OpenDP's own map;
* a total ``rho`` converts to ``epsilon`` by the CKS conversion, minimised here over a dense grid of
  Renyi orders (an upper bound on the infimum), and by OpenDP's ``make_zCDP_to_approxDP``;
* the charges a real fit makes are read off its :class:`ZCDPFilter` (a recording subclass).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.accounting.marginals import (
    ZCDPFilter,
    calibrate_selection,
    marginal_total_rho,
    measurement_rho,
    measurement_sigma,
    selection_rho,
    selection_scale,
)
from tabpriv.backends.base import FitContext
from tabpriv.backends.marginal.aim import AIMBackend
from tabpriv.backends.marginal.mst import MSTBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, PrivacyParameterError
from tabpriv.schema import Column, Schema
from tabpriv.transformers import TableTransformer

from ..conftest import make_small_schema

SIGMAS = [0.05, 1.0, 3.7, 25.0, 1e4]
TARGETS = [(0.3, 1e-6), (1.0, 1e-5), (5.1, 1e-6), (10.0, 1e-9), (5000.0, 1e-5)]


# -- independent recomputations ------------------------------------------------------------------------
def _rho_of_gaussian(sigma: float) -> float:
    """Replace-one count marginal: Delta_2 = sqrt(2), rho = Delta_2^2 / (2 sigma^2)."""
    return 2.0 / (2.0 * sigma**2)


def _rho_of_selection(scale: float, sensitivity: float) -> float:
    """Exponential mechanism as Gumbel noisy max, non-monotonic scores: eps = 2 D / b, rho = eps^2 / 8."""
    return (2.0 * sensitivity / scale) ** 2 / 8.0


def _cks_epsilon(rho: float, delta: float) -> float:
    """CKS 2020 Cor. 13 on dense grids of orders: min_a a rho + ln(1 - 1/a) - (ln delta + ln a)/(a - 1).

    A minimum over a finite grid is an upper bound on the infimum: 100,000 orders log-spaced in
    ``a - 1`` over 1e-8 .. 1e8, then 100,000 more between the neighbours of the best one (the objective
    is smooth and unimodal), which puts it within ~1e-13 relative of the optimum.
    """
    log_delta = math.log(delta)

    def objective(am1: np.ndarray) -> np.ndarray:
        a = 1.0 + am1
        return a * rho + np.log1p(-1.0 / a) - (log_delta + np.log(a)) / am1

    coarse = np.geomspace(1e-8, 1e8, 100_000)
    i = int(np.argmin(objective(coarse)))
    fine = np.geomspace(coarse[max(i - 1, 0)], coarse[min(i + 1, coarse.size - 1)], 100_000)
    return max(0.0, float(min(objective(coarse).min(), objective(fine).min())))


def _opendp_epsilon(rho: float, delta: float) -> float:
    """OpenDP's conversion of a continuous Gaussian of scale 1 at sensitivity sqrt(2 rho) (rho-zCDP)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="f64", nan=False)), dp.l2_distance(T="f64"), 1.0
    )
    d_in = math.sqrt(2.0 * rho)
    assert float(meas.map(d_in)) == pytest.approx(rho, rel=1e-9)
    return float(dp.c.make_zCDP_to_approxDP(meas).map(d_in).epsilon(delta))


def _spans(schema: Schema) -> tuple:
    return TableTransformer(schema).fit().spans_


# -- measurement ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", SIGMAS)
def test_measurement_rho_is_two_over_two_sigma_squared(sigma: float) -> None:
    import opendp.prelude as dp

    assert measurement_rho(sigma) == pytest.approx(_rho_of_gaussian(sigma), rel=1e-12)
    assert measurement_sigma(_rho_of_gaussian(sigma)) == pytest.approx(sigma, rel=1e-12)
    # OpenDP's own map of the integer discrete Gaussian the backends sample with, at Delta_2 = sqrt(2)
    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="f64"), sigma)
    theirs = float(meas.map(math.sqrt(2.0)))
    assert theirs >= measurement_rho(sigma) * (1 - 1e-12)  # OpenDP rounds up, never down
    assert theirs == pytest.approx(measurement_rho(sigma), rel=1e-9)


def test_measurement_rejects_bad_scales() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(PrivacyParameterError, match="sigma"):
            measurement_rho(bad)
        with pytest.raises(PrivacyParameterError, match="rho"):
            measurement_sigma(bad)


# -- selection -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [1e-5, 1e-3, 0.02, 1.0, 300.0])
@pytest.mark.parametrize("sensitivity", [2.0, 8.0, 21.5])
def test_selection_cost_closed_form_vs_opendp_vs_calibration(rho: float, sensitivity: float) -> None:
    # the scale for rho by the closed form: eps = sqrt(8 rho), scale = 2 D / eps
    scale = 2.0 * sensitivity / math.sqrt(8.0 * rho)
    assert selection_scale(rho, sensitivity) == pytest.approx(scale, rel=1e-12)
    assert _rho_of_selection(scale, sensitivity) == pytest.approx(rho, rel=1e-12)
    # OpenDP's privacy map (the figure the backends charge) agrees with the closed form
    assert selection_rho(scale, sensitivity) == pytest.approx(rho, rel=1e-9)
    assert selection_rho(2 * scale, sensitivity) == pytest.approx(rho / 4, rel=1e-9)
    # calibration: the cost by OpenDP's map never exceeds rho, and is rho up to rounding
    cal_scale, cost = calibrate_selection(rho, sensitivity)
    assert cost <= rho
    assert cost == pytest.approx(rho, rel=1e-9)
    assert cal_scale == pytest.approx(scale, rel=1e-9)
    assert _rho_of_selection(cal_scale, sensitivity) <= rho * (1 + 1e-12)


# -- total rho -> epsilon -----------------------------------------------------------------------------
@pytest.mark.parametrize(("epsilon", "delta"), TARGETS)
def test_total_rho_converts_to_at_most_the_target_by_two_independent_conversions(
    epsilon: float, delta: float
) -> None:
    rho, stated = marginal_total_rho(epsilon, delta)
    ours, opendp = _cks_epsilon(rho, delta), _opendp_epsilon(rho, delta)
    assert ours == pytest.approx(opendp, rel=1e-6)
    assert ours <= epsilon * (1 + 1e-9) and opendp <= epsilon * (1 + 1e-9)
    assert stated <= epsilon * (1 + 1e-12)
    assert stated >= max(ours, opendp) * (1 - 1e-6)  # never states less than either conversion
    # the largest such rho: a slightly larger one would overspend (by the independent conversion)
    assert _cks_epsilon(rho * (1 + 1e-5), delta) > epsilon


def test_total_rho_above_the_cap_is_calibrated_to_the_cap() -> None:
    rho, stated = marginal_total_rho(1e6, 1e-5)
    assert stated <= 1e4 * (1 + 1e-12)
    assert _cks_epsilon(rho, 1e-5) == pytest.approx(1e4, rel=1e-6)


# -- MST's plan ----------------------------------------------------------------------------------------
def test_mst_plan_thirds_of_the_budget() -> None:
    spans = _spans(make_small_schema())
    c = len(spans)
    plan = MSTBackend(iters=10).plan(spans, 400, PrivacyBudget(2.0, 1e-6), seeded=True)
    noise = plan.noise
    sch = noise.schedule
    rho = noise.rho
    assert rho == pytest.approx(marginal_total_rho(2.0, 1e-6)[0], rel=1e-12)
    assert sch["rounds"] == c - 1  # every pair fits the default max_cells: a spanning tree
    one_way = c * _rho_of_gaussian(sch["sigma_one_way"])
    pairs = sch["rounds"] * _rho_of_gaussian(sch["sigma_two_way"])
    selections = sch["rounds"] * _rho_of_selection(sch["selection_scale"], 2.0)
    assert sch["score_sensitivity"] == 2.0  # replace-one L1 score sensitivity
    for third in (one_way, pairs, selections):
        assert third == pytest.approx(rho / 3, rel=1e-9)
    assert sch["selection_rho"] == pytest.approx(_rho_of_selection(sch["selection_scale"], 2.0), rel=1e-9)
    assert one_way + pairs + sch["rounds"] * sch["selection_rho"] <= rho * (1 + 1e-9)
    assert one_way + pairs + selections == pytest.approx(rho, rel=1e-9)
    # what the ledger is asked to pay: one spend, the plan's epsilon, by the independent conversion
    (spend,) = plan.spends
    assert spend.epsilon <= 2.0 * (1 + 1e-12)
    assert _cks_epsilon(rho, 1e-6) <= spend.epsilon * (1 + 1e-6)
    assert spend.parameters["adjacency"] == "replace-one"


def test_mst_plan_with_a_forest_when_max_cells_drops_pairs() -> None:
    # sizes: color 3, code 5, age 100, score 33, flag 2. At max_cells=100 every pair with age (>= 200
    # cells) and code x score (165) is dropped: age is isolated, the other four stay connected.
    spans = _spans(make_small_schema())
    sch = MSTBackend(max_cells=100).plan(spans, 400, PrivacyBudget(2.0, 1e-6)).noise.schedule
    assert sch["rounds"] == 3
    rho = marginal_total_rho(2.0, 1e-6)[0]
    assert 3 * _rho_of_gaussian(sch["sigma_two_way"]) == pytest.approx(rho / 3, rel=1e-9)
    # no pair at all: the whole budget on the one-way marginals
    solo = MSTBackend(max_cells=100).plan(spans[2:3], 400, PrivacyBudget(2.0, 1e-6)).noise.schedule
    assert solo["rounds"] == 0 and _rho_of_gaussian(solo["sigma_one_way"]) == pytest.approx(rho, rel=1e-9)


def test_aim_initial_schedule() -> None:
    spans = _spans(make_small_schema())
    c, rounds, alpha = len(spans), 40, 0.8
    sch = AIMBackend(rounds=rounds, alpha=alpha).plan(spans, 400, PrivacyBudget(2.0, 1e-6)).noise.schedule
    rho = marginal_total_rho(2.0, 1e-6)[0]
    assert _rho_of_gaussian(sch["sigma_initial"]) == pytest.approx(alpha * rho / rounds, rel=1e-9)
    assert sch["selection_rho_initial"] == pytest.approx((1 - alpha) * rho / rounds, rel=1e-9)
    assert sch["workload_marginals"] == math.comb(c, 2)
    # no target, all pairs: a candidate's weight is sum_s |r & s|: c - 1 for a one-way marginal, and
    # 2 + 2 (c - 2) = 2c - 2 for a pair (itself, and the 2 (c - 2) pairs sharing one column); Delta = 2 max w
    assert sch["score_sensitivity"] == 2.0 * (2 * c - 2)


def test_aim_target_workload_and_score_sensitivity() -> None:
    """With a target t: all pairs (weight 4 with t, else 1) plus every triple (t, i, j) at weight 4; the
    score sensitivity is 2 max_r w_r over the downward closure, w_r = sum_s c_s |r & s| (AIM's weights)."""
    spans = _spans(make_small_schema())
    c, t = len(spans), 4  # target: "flag"
    work = {p: (4.0 if t in p else 1.0) for p in itertools.combinations(range(c), 2)}
    work.update({tuple(sorted((t, i, j))): 4.0 for i, j in itertools.combinations(range(c - 1), 2)})
    closure = {r for s in work for k in range(1, len(s) + 1) for r in itertools.combinations(s, k)}
    max_w = max(sum(cs * len(set(r) & set(s)) for s, cs in work.items()) for r in closure)
    sch = AIMBackend(target="flag").plan(spans, 400, PrivacyBudget(2.0, 1e-6)).noise.schedule
    assert sch["workload_marginals"] == len(work) == math.comb(c, 2) + math.comb(c - 1, 2)
    assert sch["score_sensitivity"] == pytest.approx(2.0 * max_w, rel=1e-12)
    assert sch["target"] == "flag" and sch["target_weight"] == 4.0


# -- the filter ----------------------------------------------------------------------------------------
def test_filter_refuses_an_overspend_and_records_nothing() -> None:
    f = ZCDPFilter(1.0)
    f.charge(0.6, "first")
    with pytest.raises(BudgetExceededError, match="second"):
        f.charge(0.5, "second")
    assert f.spent == 0.6 and f.entries == [("first", 0.6)]
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(PrivacyParameterError):
            f.charge(bad, "bad")
    assert f.spent == 0.6 and len(f.entries) == 1
    f.charge(0.4, "exactly the rest")  # spending exactly the total is allowed
    assert f.remaining == 0.0
    with pytest.raises(BudgetExceededError):
        f.charge(1e-6, "one more")
    assert len(f.entries) == 2 and math.fsum(r for _, r in f.entries) == pytest.approx(1.0, rel=1e-15)


# -- real fits: the charges read off the filter --------------------------------------------------------
class _RecordingFilter(ZCDPFilter):
    """A :class:`ZCDPFilter` that keeps a reference to every instance made (a test spy)."""

    made: ClassVar[list[ZCDPFilter]] = []

    def __init__(self, rho: float) -> None:
        super().__init__(rho)
        _RecordingFilter.made.append(self)


def _tiny() -> tuple[Schema, pd.DataFrame]:
    schema = Schema(
        (
            Column("a", "categorical", categories=("w", "x", "y", "z")),
            Column("b", "categorical", categories=("lo", "mid", "hi")),
            Column("c", "integer", lower=0, upper=4),
        )
    )
    rng = np.random.default_rng(3)
    b = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
    a = np.where(rng.random(300) < 0.7, b, rng.choice(4, size=300))
    c = np.clip(2 * b + rng.integers(-1, 2, size=300), 0, 4)
    df = pd.DataFrame(
        {
            "a": np.array(list("wxyz"), dtype=object)[a],
            "b": np.array(["lo", "mid", "hi"], dtype=object)[b],
            "c": c,
        }
    )
    return schema, df


@pytest.fixture(scope="module")
def recorded_fits() -> Iterator[dict[str, tuple[Synthesizer, ZCDPFilter]]]:
    schema, df = _tiny()
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tabpriv.backends.marginal.common.ZCDPFilter", _RecordingFilter)
        for name, params in (
            ("mst", {"iters": 30}),
            ("aim", {"iters": 30, "round_iters": 10, "rounds": 12, "alpha": 0.9}),
        ):
            _RecordingFilter.made.clear()
            synth = Synthesizer(
                backend=name, epsilon=1.0, delta=1e-5, schema=schema, device="cpu", random_state=0,
                backend_params=params, ledger=PrivacyLedger(PrivacyBudget(1.0, 1e-5)),
            )  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                synth.fit(df)
            (ledger,) = _RecordingFilter.made
            out[name] = (synth, ledger)
    yield out


def _prefix_sums_within(entries: list[tuple[str, float]], rho: float) -> None:
    total = 0.0
    for _, r in entries:
        total += r
        assert total <= rho * (1 + 1e-9)


def test_mst_fit_charges_the_plan(recorded_fits) -> None:
    synth, ledger = recorded_fits["mst"]
    backend = synth.backend_
    rho, c = backend.rho_, 3
    entries = ledger.entries
    assert ledger.rho == rho
    assert [w.split(" ")[0] for w, _ in entries] == ["measure"] * c + ["select", "measure"] * (c - 1)
    for _, r in entries[:c]:
        assert r == pytest.approx(rho / (3 * c), rel=1e-9)
    for _, r in entries[c:]:
        assert r == pytest.approx(rho / (3 * (c - 1)), rel=1e-9)
    _prefix_sums_within(entries, rho)
    assert math.fsum(r for _, r in entries) == pytest.approx(rho, rel=1e-9)
    # the measurements kept are the ones charged, at the charged scale
    measured = [r for w, r in entries if w.startswith("measure")]
    assert [_rho_of_gaussian(m.sigma) for m in backend.measurements_] == pytest.approx(measured, rel=1e-12)
    assert backend.rho_spent_ == pytest.approx(rho, rel=1e-9)
    # the ledger paid the plan's epsilon once, and that epsilon covers rho by both conversions
    (spend,) = synth.ledger_.spends
    assert spend.epsilon <= 1.0 * (1 + 1e-12)
    assert max(_cks_epsilon(rho, 1e-5), _opendp_epsilon(rho, 1e-5)) <= spend.epsilon * (1 + 1e-6)


def test_aim_fit_charges_sum_to_rho_and_never_exceed_it(recorded_fits) -> None:
    synth, ledger = recorded_fits["aim"]
    backend = synth.backend_
    rho, c, alpha = backend.rho_, 3, 0.9
    entries = ledger.entries
    assert ledger.rho == rho
    _prefix_sums_within(entries, rho)
    assert math.fsum(r for _, r in entries) == pytest.approx(rho, rel=1e-9)
    assert ledger.spent <= rho * (1 + 1e-9)
    # one-way marginals first, at alpha rho / T each
    for _, r in entries[:c]:
        assert r == pytest.approx(alpha * rho / 12, rel=1e-9)
    # then rounds of (selection, measurement) whose costs are (1 - alpha) : alpha (budget annealing
    # scales both by 4; the last round splits what is left the same way)
    rounds = entries[c:]
    assert len(rounds) == 2 * backend.rounds_run_ and backend.rounds_run_ >= 1
    for (w_sel, r_sel), (w_meas, r_meas) in zip(rounds[::2], rounds[1::2], strict=True):
        assert w_sel.startswith("select") and w_meas.startswith("measure")
        assert r_sel / r_meas == pytest.approx((1 - alpha) / alpha, rel=1e-9)
    measured = [r for w, r in entries if w.startswith("measure")]
    assert [_rho_of_gaussian(m.sigma) for m in backend.measurements_] == pytest.approx(measured, rel=1e-12)
    assert backend.rho_spent_ == pytest.approx(rho, rel=1e-9)
    (spend,) = synth.ledger_.spends
    assert max(_cks_epsilon(rho, 1e-5), _opendp_epsilon(rho, 1e-5)) <= spend.epsilon * (1 + 1e-6)
    assert spend.epsilon <= 1.0 * (1 + 1e-12)


def test_aim_filter_stops_a_round_that_would_overspend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter is what enforces the total: a schedule that overspends raises before its round runs."""
    schema, df = _tiny()
    table = TableTransformer(schema).fit().transform(df)
    backend = AIMBackend(iters=5, round_iters=5, rounds=12)
    plan = backend.plan(table.spans, table.n_rows, PrivacyBudget(1.0, 1e-5), seeded=True)
    calls: list[int] = []

    def _noisy(counts: np.ndarray, sigma: float, context: FitContext, label: str) -> np.ndarray:
        calls.append(1)
        return np.asarray(counts, dtype=np.int64)

    monkeypatch.setattr("tabpriv.backends.marginal.common.noisy_counts", _noisy)
    # a filter holding a tenth of the paid total: the first one-way measurement costs 0.9 rho / 12 =
    # 0.075 rho and fits, the second would reach 0.15 rho and must be refused
    monkeypatch.setattr("tabpriv.backends.marginal.common.ZCDPFilter", lambda rho: ZCDPFilter(rho / 10.0))
    with pytest.raises(BudgetExceededError):
        backend.fit(table, plan, FitContext("cpu", 0, True))
    assert len(calls) == 1  # the second measurement was refused before any noise was drawn
