"""Small privacy audits (seconds each): audited lower bound <= claimed epsilon, and the audit has power.

The full audits (more trials) run with ``python -m tabpriv.audit BACKEND --trials N``; see
docs/assurance.md.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tabpriv.audit import run_audit
from tabpriv.audit.__main__ import main
from tabpriv.errors import UnknownBackendError


@pytest.mark.parametrize(
    ("backend", "trials"), [("independent", 300), ("slicing", 1000), ("dp2-vae", 5000), ("dpsgd-vae", 5000)]
)
def test_audit_lower_bound_below_claim(backend: str, trials: int) -> None:
    res = run_audit(backend, trials, epsilon=5.1, delta=1e-5, seed=1)
    assert res.claimed_epsilon <= 5.1 * (1 + 1e-9)
    assert 0.0 <= res.epsilon_lb <= res.claimed_epsilon, res.to_dict()
    assert res.passed


def test_audit_detects_an_under_noised_independent_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Power check: a bug that divides the noise by 10 while claiming epsilon=1 is caught."""
    import tabpriv.backends.independent as ind

    real = ind.calibrate_gaussian

    def buggy(epsilon: float, delta: float, sensitivity: float):  # type: ignore[no-untyped-def]
        cal = real(epsilon, delta, sensitivity)
        return dataclasses.replace(cal, sigma=cal.sigma / 10.0)

    monkeypatch.setattr(ind, "calibrate_gaussian", buggy)
    res = run_audit("independent", 300, epsilon=1.0, delta=1e-5, seed=2)
    assert res.claimed_epsilon == pytest.approx(1.0, rel=0.02)
    assert res.epsilon_lb > res.claimed_epsilon
    assert not res.passed


def test_audit_detects_an_under_noised_slicing_release(monkeypatch: pytest.MonkeyPatch) -> None:
    import tabpriv.backends._slicing_mechanism as sm

    real = sm.calibrate_sigma

    def buggy(*args, **kwargs):  # type: ignore[no-untyped-def]
        cal = real(*args, **kwargs)
        return dataclasses.replace(cal, sigma=cal.sigma / 20.0)

    monkeypatch.setattr(sm, "calibrate_sigma", buggy)
    res = run_audit("slicing", 500, epsilon=1.0, delta=1e-5, seed=3)
    assert res.epsilon_lb > res.claimed_epsilon


def test_unknown_backend() -> None:
    with pytest.raises(UnknownBackendError, match="audits exist for"):
        run_audit("nope", 10)


def test_cli_writes_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.json"
    rc = main(["dpsgd-vae", "--trials", "2000", "--epsilon", "5.1", "--json", str(out)])
    assert rc == 0
    assert "audited eps lower bound" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert rows[0]["backend"] == "dpsgd-vae" and rows[0]["passed"] is True
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow
def test_lipschitz_release_membership_inference_below_nominal() -> None:
    from ..conftest import SHARED

    if not (SHARED / "adult" / "adult.test").exists():
        pytest.skip("shared Adult test split not available")
    from tabpriv.audit.mia import audit_lipschitz_mia

    res = audit_lipschitz_mia(n_members=300, epsilon=1.0, delta=1e-6, seed=0)
    assert res["nominal_max_tpr_at_1pct_fpr"] == pytest.approx(min(1.0, 2.718281828 * 0.01 + 1e-6), rel=1e-6)
    assert res["max_tpr_at_1pct_fpr"] <= res["nominal_max_tpr_at_1pct_fpr"] + 0.05  # 300 non-members: coarse
