"""Audits of the marginal backends ``mst`` and ``aim`` (tabpriv/audit/marginal.py, recompute.py).

Every fit is a real ``Synthesizer`` fit on the raw neighbouring tables of the audit scenario (n = 20,
marginal domain (2, 2, 4)), seeded, so each assertion is deterministic. The audits run mbi's model fit
as shipped by default; its JIT compilation (tens of seconds per process and clique set) would take the
default suite past a minute, so the audit tests here pass ``real_model=False``: the independent model of
the noisy one-way marginals stands in for it (post-processing; for mst the released measurements are
bit-identical, checked below). The recompute fits and the slow mbi-model test run mbi. Tolerances: the
recomputed rho equals the paid rho to 1e-9 relative and the recomputed epsilon the reported one to
1e-6; the parametric tests flag at alpha = 0.001 (false-alarm rate of a correct run <= 0.1% under their
null); the end-to-end audit flags when its Clopper-Pearson lower bound exceeds the claim.
"""

from __future__ import annotations

import numpy as np
import pytest

from tabpriv.audit import run_audit
from tabpriv.audit.marginal import marginal_shift_audit, selection_audit, skip_model_fit
from tabpriv.audit.recompute import marginal_recompute
from tabpriv.audit.targets import MUTATIONS, get_mutation


# -- recompute -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["mst", "aim"])
def test_recomputed_epsilon_agrees_with_the_reported_one(backend: str) -> None:
    row = marginal_recompute(backend, 1.0)
    assert row["reported_epsilon"] == pytest.approx(1.0, abs=1e-9)
    assert row["rho"] <= row["rho_paid"] * (1 + 1e-9)  # what ran never exceeds what was paid
    assert row["rho"] == pytest.approx(row["rho_paid"], rel=1e-9)  # and both spend it all
    assert row["recomputed_epsilon"] == pytest.approx(row["reported_epsilon"], abs=1e-6)
    assert row["selections"] == row["measurements"] - 3  # one selection per marginal after the one-ways
    assert row["rho_selections"] > 0 and row["rho_measurements"] > 0
    if backend == "mst":
        assert row["rho_plan_by_hand"] == pytest.approx(row["rho"], rel=1e-12)
        assert row["selections"] == 2  # a spanning tree of 3 columns


def test_recompute_catches_measurements_charged_at_half_their_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken accountant (each measurement charged 1/(2 sigma^2)): AIM runs more, the sum exceeds rho."""
    import tabpriv.backends.marginal.common as common

    original = common.measurement_rho
    monkeypatch.setattr(common, "measurement_rho", lambda sigma: 0.5 * original(sigma))
    row = marginal_recompute("aim", 1.0)
    assert row["rho"] > 1.2 * row["rho_paid"]
    assert row["recomputed_epsilon"] > 1.1 * row["reported_epsilon"]


# -- the seams and the model stand-in -------------------------------------------------------------------
def test_mutations_patch_the_names_the_backends_call_and_restore_them() -> None:
    import tabpriv.backends.marginal.aim as aim
    import tabpriv.backends.marginal.common as common
    import tabpriv.backends.marginal.measure as measure

    for backend in ("mst", "aim"):
        assert {"noise-x0.5", "no-noise", "unnoised-step", "select-argmax"} <= set(MUTATIONS[backend])
        assert all(m.expected == "flag" for m in MUTATIONS[backend].values())
    with MUTATIONS["aim"]["no-noise"].applied(), MUTATIONS["aim"]["select-argmax"].applied():
        assert common.noisy_counts is not measure.noisy_counts
        assert aim.private_select is not measure.private_select
    assert common.noisy_counts is measure.noisy_counts and aim.private_select is measure.private_select


def test_model_stand_in_leaves_mst_measurements_bit_identical() -> None:
    """mst's selection reads only the noisy one-way marginals: skipping the final model fit changes no
    released measurement (same seed), so the audits below see what the shipped fit releases."""
    from tabpriv.audit.recompute import _fit

    real = _fit("mst", 20, {"iters": 50}, 2.0, 1e-5).backend_
    with skip_model_fit():
        stub = _fit("mst", 20, {"iters": 50}, 2.0, 1e-5).backend_
    assert [m.clique for m in real.measurements_] == [m.clique for m in stub.measurements_]
    for a, b in zip(real.measurements_, stub.measurements_, strict=True):
        assert np.array_equal(a.noisy, b.noisy) and a.sigma == b.sigma
    assert stub.sample(50, seed=0).shape == real.sample(50, seed=0).shape


# -- the parametric mean-shift test -----------------------------------------------------------------------
def _shift(backend: str, mutation: str | None, trials: int, epsilon: float = 8.0):  # type: ignore[no-untyped-def]
    return marginal_shift_audit(
        backend, trials, epsilon=epsilon, seed=0, mutation=get_mutation(backend, mutation), real_model=False
    )


def test_mst_shift_shipped_passes_and_halved_noise_is_flagged() -> None:
    ok = _shift("mst", None, 60)  # measured R in [0.50, 1.64]; noise-x0.5: [1.47, 2.92]
    assert not ok.flagged and ok.ratio_low < 1.0 < ok.ratio_high, ok.to_dict()
    assert ok.claimed_epsilon == pytest.approx(8.0, abs=1e-6)
    bad = _shift("mst", "noise-x0.5", 60)
    assert bad.flagged and bad.ratio_low > 1.0, bad.to_dict()
    assert bad.claimed_epsilon == pytest.approx(ok.claimed_epsilon, rel=1e-12)  # the claim is unchanged


@pytest.mark.parametrize("backend", ["mst", "aim"])
@pytest.mark.parametrize("mutation", ["no-noise", "unnoised-step"])
def test_unnoised_releases_are_flagged(backend: str, mutation: str) -> None:
    res = _shift(backend, mutation, 20)
    assert res.flagged, res.to_dict()
    if mutation == "unnoised-step":
        assert res.statistic == "one-way 0"


@pytest.mark.slow
def test_aim_shift_shipped_passes_and_halved_noise_is_flagged() -> None:
    ok = _shift("aim", None, 100)
    assert not ok.flagged and ok.ratio_low < 1.0 < ok.ratio_high, ok.to_dict()
    bad = _shift("aim", "noise-x0.5", 100)
    assert bad.flagged and bad.ratio_low > 1.0, bad.to_dict()


@pytest.mark.slow
def test_aim_shift_with_the_mbi_model_as_shipped() -> None:
    """The adaptive rounds scoring against mbi's own model (no stand-in): measured 65 s + 13 s."""
    ok = marginal_shift_audit("aim", 60, epsilon=8.0, seed=0)
    assert not ok.flagged and ok.ratio_low < 1.0 < ok.ratio_high, ok.to_dict()
    assert "model mbi" in ok.parameters["setting"]
    bad = marginal_shift_audit("aim", 60, epsilon=8.0, seed=0, mutation=get_mutation("aim", "noise-x0.5"))
    assert bad.flagged, bad.to_dict()


# -- the selection test ---------------------------------------------------------------------------------
def test_mst_selection_without_noise_is_flagged() -> None:
    ok = selection_audit("mst", 30, epsilon=4.0, seed=0, real_model=False)
    assert not ok.flagged and ok.parameters["p_value"] > 0.01, ok.to_dict()
    assert ok.parameters["selections"] == 2 * 2 * 30  # 2 selections per fit, D and D'
    bad = selection_audit(
        "mst", 30, epsilon=4.0, seed=0, mutation=get_mutation("mst", "select-argmax"), real_model=False
    )
    assert bad.flagged, bad.to_dict()
    # the noise-free selection is invisible to the count statistics: the mean shift passes it
    assert not _shift("mst", "select-argmax", 50).flagged


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mst", "aim"])
@pytest.mark.parametrize("mutation", ["select-argmax", "select-noise-x0.25"])
def test_selection_with_less_noise_is_flagged(backend: str, mutation: str) -> None:
    ok = selection_audit(backend, 100, epsilon=4.0, seed=0, real_model=False)
    assert not ok.flagged
    bad = selection_audit(
        backend, 100, epsilon=4.0, seed=0, mutation=get_mutation(backend, mutation), real_model=False
    )
    assert bad.flagged, bad.to_dict()


# -- the end-to-end audit (Clopper-Pearson lower bound) -------------------------------------------------
def test_mst_end_to_end_shipped_passes_and_no_noise_is_flagged() -> None:
    ok = run_audit("mst", 50, epsilon=1.0, seed=0, real_model=False)
    assert ok.claimed_epsilon == pytest.approx(1.0, abs=1e-9) and ok.passed, ok.to_dict()
    bad = run_audit("mst", 50, mutation="no-noise", epsilon=1.0, seed=0, real_model=False)
    assert bad.flagged and bad.epsilon_lb > 1.0, bad.to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("mutation", [None, "no-noise", "unnoised-step"])
def test_aim_end_to_end(mutation: str | None) -> None:
    res = run_audit("aim", 50, mutation=mutation, epsilon=1.0, seed=0, real_model=False)
    assert res.flagged == (mutation is not None), res.to_dict()
