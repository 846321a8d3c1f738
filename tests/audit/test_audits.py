"""End-to-end privacy audits (seconds each): the shipped code passes, a gross mutation is flagged.

Every audit fits the real backend through ``Synthesizer`` on raw DataFrames (tabpriv/audit/targets.py).
Fixed seeds; tolerances: the claim is the ledger's epsilon (within 2% of the target), "passes" means
``epsilon_lb <= claim``, "flagged" means ``epsilon_lb > claim``. With n counted trials per dataset a
perfect separation certifies about ``ln(n / 3.7)``, so the gross mutation (one training step or one
histogram released without noise) is flagged at epsilon = 1 from about 25 counted trials on. The power
runs (thousands of trials, every mutation) are marked ``slow``; their results are docs/assurance.md's
table (``python -m tabpriv.audit.power``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tabpriv.audit import run_audit
from tabpriv.audit.__main__ import main
from tabpriv.audit.targets import MUTATIONS
from tabpriv.errors import AuditError, UnknownBackendError

#: backend -> (trials per dataset, audit kwargs) of the fast checks
FAST: dict[str, tuple[int, dict[str, Any]]] = {
    "independent": (100, {}),
    "slicing": (100, {}),
    "dpsgd-vae": (30, {"epochs": 2}),
    "lipschitz-vae": (30, {"epochs": 2}),
    "dp2-vae": (40, {"n_rows": 1, "n_subsets": 1, "steps": 3}),
}


@pytest.mark.parametrize("backend", sorted(FAST))
def test_real_code_passes_and_unnoised_step_is_flagged(backend: str) -> None:
    trials, kw = FAST[backend]
    real = run_audit(backend, trials, epsilon=1.0, delta=1e-5, seed=1, **kw)
    assert real.claimed_epsilon == pytest.approx(1.0, rel=0.02)
    assert real.passed, real.to_dict()
    broken = run_audit(backend, trials, mutation="unnoised-step", epsilon=1.0, delta=1e-5, seed=1, **kw)
    assert broken.claimed_epsilon == pytest.approx(real.claimed_epsilon, rel=1e-9)  # the claim is unchanged
    assert broken.flagged, broken.to_dict()


@pytest.mark.parametrize(
    ("backend", "mutation"),
    [(b, m) for b in sorted(MUTATIONS) for m, mu in sorted(MUTATIONS[b].items()) if mu.expected == "error"],
)
def test_audit_errors_when_the_real_loop_does_not_run(backend: str, mutation: str) -> None:
    """The audit must not pass when the code it claims to audit is replaced (it used to, for dp2-vae)."""
    trials, kw = FAST[backend]
    with pytest.raises((RuntimeError, AuditError)):
        run_audit(backend, trials, mutation=mutation, epsilon=1.0, seed=1, **kw)


def test_every_backend_has_the_standard_mutations() -> None:
    for backend in ("independent", "slicing", "dpsgd-vae", "lipschitz-vae", "dp2-vae"):
        names = set(MUTATIONS[backend])
        assert {"noise-x0.5", "noise-x0.25", "sensitivity-x2", "unnoised-step", "loop-raises"} <= names
    for backend in ("dpsgd-vae", "lipschitz-vae", "dp2-vae"):
        assert "sampler-shuffle" in MUTATIONS[backend]


def test_mutations_restore_the_code() -> None:
    import tabpriv.backends.vae.dpsgd_loop as dp

    before = dp.gaussian_noise
    with MUTATIONS["dpsgd-vae"]["noise-x0.5"].applied():
        assert dp.gaussian_noise is not before
    assert dp.gaussian_noise is before


def test_unknown_backend_and_mutation() -> None:
    with pytest.raises(UnknownBackendError, match="audits exist for"):
        run_audit("nope", 10)
    with pytest.raises(UnknownBackendError, match="No mutation"):
        run_audit("independent", 10, mutation="nope")


def test_cli_writes_json_and_flags_a_mutation(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.json"
    assert main(["independent", "--trials", "60", "--epsilon", "1", "--json", str(out)]) == 0
    rc = main(
        ["independent", "--trials", "60", "--epsilon", "1", "--mutation", "unnoised-step", "--json", str(out)]
    )
    assert rc == 2
    text = capsys.readouterr().out
    assert "audited eps lower bound" in text and "[mutation unnoised-step]" in text
    rows = json.loads(out.read_text())
    assert [r["passed"] for r in rows] == [True, False]
    assert rows[1]["mutation"] == "unnoised-step"
    assert not list(tmp_path.glob("*.tmp*"))
    assert main(["independent", "--trials", "60", "--mutation", "loop-raises"]) == 1
    assert main(["dp2-vae", "--list-mutations"]) == 0


def test_mia_bound_is_not_vacuous() -> None:
    """The lipschitz-vae membership check: a perfect attack on 1,000 members refutes epsilon = 5.1.

    The former check (TPR at 1% FPR <= min(1, e^eps 0.01 + delta)) allowed TPR = 1 at epsilon >= 4.6.
    """
    from tabpriv.audit.mia import operating_point_bound

    conf = 1 - 0.05 / 6
    assert operating_point_bound(1.0, 0.001, 1000, 1000, 1e-6, conf) > 5.1
    assert operating_point_bound(0.013, 0.01, 1000, 1000, 1e-6, conf) < 1.0  # the measured ε=1 run
    assert operating_point_bound(0.2, 0.01, 1000, 1000, 1e-6, conf) > 1.0  # would refute ε = 1


@pytest.mark.slow
def test_lipschitz_release_membership_inference_below_nominal() -> None:
    from ..conftest import SHARED

    if not (SHARED / "adult" / "adult.test").exists():
        pytest.skip("shared Adult test split not available")
    from tabpriv.audit.mia import audit_lipschitz_mia

    res = audit_lipschitz_mia(n_members=300, epsilon=1.0, delta=1e-6, seed=0)
    assert res["testable"] and res["passed"], res
