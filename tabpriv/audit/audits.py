"""Privacy audits of every backend, end to end (empirical lower bounds on epsilon).

Adjacency everywhere: **replace-one** — ``D`` and ``D'`` are raw DataFrames with the same rows except
row 0, which ``D'`` replaces by a worst-case canary row within the declared schema. Each trial fits the
shipped backend through :class:`tabpriv.Synthesizer` (schema validation with ``clip=True``, the
transformers, block clipping, calibration, the ledger, the real sampler, noise, ``K`` and ``T``); the
adversary reads the released object, or every noisy update for DP-SGD-style training (white-box), and
applies a likelihood-ratio-style test. Method, scenarios and scores: :mod:`tabpriv.audit.e2e` and
:mod:`tabpriv.audit.targets`; the deliberately broken variants used to measure the audits' power:
:data:`tabpriv.audit.targets.MUTATIONS`.

The former audits of ``dp2-vae`` and ``dpsgd-vae`` re-implemented one noisy update with ``K = T = 1``
and therefore passed with the real training loop replaced by a function that raises; they are gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tabpriv.audit.e2e import AuditResult
from tabpriv.audit.targets import E2E_AUDITS, MUTATIONS, get_mutation

__all__ = ["AUDITS", "MUTATIONS", "AuditResult", "run_audit"]

#: Backend name -> its end-to-end audit ``fn(trials, epsilon=, delta=, seed=, mutation=, ...)``.
AUDITS: dict[str, Callable[..., AuditResult]] = E2E_AUDITS


def run_audit(backend: str, trials: int, *, mutation: str | None = None, **kwargs: Any) -> AuditResult:
    """Run the end-to-end audit registered for ``backend``, optionally against a named mutation.

    Raises:
        UnknownBackendError: No audit for that backend, or no such mutation.

    """
    from tabpriv.errors import UnknownBackendError

    fn = AUDITS.get(backend)
    if fn is None:
        raise UnknownBackendError(
            f"No privacy audit for backend {backend!r}; audits exist for: {', '.join(sorted(AUDITS))}."
        )
    return fn(trials, mutation=get_mutation(backend, mutation), **kwargs)
