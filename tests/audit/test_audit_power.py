"""Power runs of the end-to-end audits (minutes; ``-m slow``): a mutation must be flagged.

Kept apart from tests/audit/test_audits.py so that running that file runs only the fast checks. The
full table of docs/assurance.md comes from ``python -m tabpriv.audit.power``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tabpriv.audit import run_audit


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "mutation", "trials", "epsilon", "kw"),
    [
        ("independent", "noise-x0.25", 2_000, 2.0, {}),
        # K = 100 needs T = 100 decoder steps: with the audit's default T = 20 only 18% of the runs
        # use the canary's subset, and 300 trials (150 counted) cannot certify more than 1.61 < 2 even
        # for a perfect detector (docs/assurance.md, "dp2-vae power test").
        ("dp2-vae", "noise-x0.25", 500, 2.0, {"steps": 100}),
        ("dpsgd-vae", "unnoised-step", 200, 2.0, {}),
    ],
)
def test_power_runs_flag_the_mutation(
    backend: str, mutation: str, trials: int, epsilon: float, kw: Any
) -> None:
    res = run_audit(backend, trials, mutation=mutation, epsilon=epsilon, seed=0, **kw)
    assert res.flagged, res.to_dict()
