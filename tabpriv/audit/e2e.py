"""End-to-end privacy audits: the real backends, fitted through the public API, on raw tables.

Every trial builds a :class:`~tabpriv.Synthesizer` with a declared :class:`~tabpriv.Schema`
(``clip=True``) and fits it on a raw DataFrame ``D`` or on its neighbour ``D'`` (**replace-one**: row 0
replaced by a worst-case *canary row* within the schema, e.g. numbers beyond the declared bounds, which
the schema clips, and the other category of every categorical column). Nothing is re-implemented: the
schema validation, the transformers, the block clipping, the calibration, the ledger, the backend's own
sampler, noise, K and T all run as shipped. ``random_state`` is the trial's seed, so a run is
reproducible; a seeded run draws its secret noise from the seed-derived secret stream, which is
distributionally the same mechanism as the OS-keyed one.

The adversary reads the released object only (``get_state()`` arrays: the noisy counts, the slicing
release ``(U, XU + V)``) or, for DP-SGD-style training, every intermediate noisy update (white-box:
DP-SGD's guarantee covers releasing all iterates), recorded by a hook at the optimiser step; it knows
``D`` and the canary and computes a likelihood-ratio-style score. The threshold is chosen on the first
half of the trials and the Clopper-Pearson counts come from the second half
(:mod:`tabpriv.audit._stats`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.audit._stats import AuditCounts, best_threshold, evaluate_threshold

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv import Synthesizer
    from tabpriv.audit.mutations import Mutation
    from tabpriv.schema import Schema

__all__ = ["AuditResult", "Scenario", "run_trials", "split_and_count", "trial_seeds"]


@dataclass
class AuditResult:
    """Outcome of one audit (one backend, optionally one mutation)."""

    backend: str
    step: str
    adjacency: str
    trials: int
    claimed_epsilon: float
    delta: float
    epsilon_lb: float
    tpr: float
    fpr: float
    threshold: float
    seconds: float
    mutation: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @classmethod
    def from_counts(cls, counts: AuditCounts, *, started: float, **fields: Any) -> AuditResult:
        """Build a result from held-out counts; ``started`` is the ``time.perf_counter()`` at the start."""
        return cls(
            epsilon_lb=counts.epsilon_lb,
            tpr=counts.tpr,
            fpr=counts.fpr,
            threshold=counts.threshold,
            seconds=time.perf_counter() - started,
            **fields,
        )

    @property
    def passed(self) -> bool:
        """Whether the audited lower bound stays at or below the claimed epsilon."""
        return self.epsilon_lb <= self.claimed_epsilon

    @property
    def flagged(self) -> bool:
        """Whether the audit flags a violation (lower bound above the claim)."""
        return not self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["passed"] = self.passed
        d["seconds_per_fit"] = self.seconds / max(1, 2 * self.trials)
        return d


def trial_seeds(seed: int | None, n: int) -> np.ndarray:
    """``n`` reproducible 63-bit trial seeds."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)


def split_and_count(scores_d: np.ndarray, scores_dp: np.ndarray, delta: float) -> tuple[AuditCounts, int]:
    """Pick the statistic and threshold on the first half of the trials, count on the second half.

    ``scores_*`` are ``(trials,)`` or ``(trials, n_statistics)``: each column is one candidate test
    statistic (e.g. the global likelihood ratio and one per released block). The column and its
    threshold with the largest bound on the selection half are chosen there; the held-out half only
    counts, so the choice costs nothing in validity.

    Returns:
        The held-out counts and the index of the chosen statistic.

    """
    s_d = scores_d.reshape(len(scores_d), -1)
    s_p = scores_dp.reshape(len(scores_dp), -1)
    h_d, h_p = len(s_d) // 2, len(s_p) // 2
    best: tuple[tuple[float, float], int, float] | None = None
    for j in range(s_d.shape[1]):
        t = best_threshold(s_d[:h_d, j], s_p[:h_p, j], delta)
        c = evaluate_threshold(s_d[:h_d, j], s_p[:h_p, j], t, delta)
        key = (c.epsilon_lb, abs(c.tpr - c.fpr))
        if best is None or key > best[0]:
            best = (key, j, t)
    assert best is not None
    _, j, t = best
    return evaluate_threshold(s_d[h_d:, j], s_p[h_p:, j], t, delta), j


@dataclass
class Scenario:
    """A neighbouring pair of raw tables with their declared schema.

    Attributes:
        schema: Declared (public) schema.
        d: The table ``D``.
        d_prime: ``D`` with row 0 replaced by the canary.
        canary_row: Index of the replaced row (0).

    """

    schema: Schema
    d: pd.DataFrame
    d_prime: pd.DataFrame
    canary_row: int = 0

    def encoded(self, which: str) -> np.ndarray:
        """The encoded rows of ``D`` (``"d"``) or ``D'`` (``"p"``) as the fit sees them (clip=True)."""
        from tabpriv.transformers import TableTransformer

        df = self.d if which == "d" else self.d_prime
        clean, _ = self.schema.validate(df, clip=True)
        return np.asarray(TableTransformer(self.schema).fit().transform(clean).data, dtype=np.float64)


def mixed_scenario(n_rows: int = 20, n_categorical: int = 2, n_continuous: int = 1) -> Scenario:
    """``D``: ``n_rows`` identical rows at the low end of every column; ``D'``: row 0 = the canary.

    Categorical columns have two declared categories (``"a"`` in ``D``, ``"b"`` in the canary);
    continuous columns are declared on ``[0, 1]``: ``D`` holds 0, the canary holds 1e6, which the
    schema clips to 1 (``clip=True``), the far end of the bounded encoding.
    """
    import pandas as pd

    from tabpriv.schema import Column, Schema

    cols = [Column(f"c{j}", "categorical", categories=("a", "b")) for j in range(n_categorical)]
    cols += [Column(f"x{j}", "continuous", lower=0.0, upper=1.0, bins=4) for j in range(n_continuous)]
    schema = Schema(tuple(cols))
    d = pd.DataFrame(
        {
            **{f"c{j}": ["a"] * n_rows for j in range(n_categorical)},
            **{f"x{j}": [0.0] * n_rows for j in range(n_continuous)},
        }
    )
    dp = d.copy()
    for j in range(n_categorical):
        dp.loc[0, f"c{j}"] = "b"
    for j in range(n_continuous):
        dp.loc[0, f"x{j}"] = 1e6
    return Scenario(schema, d, dp)


#: ``score(fitted synthesizer, recorder) -> statistic or vector of candidate statistics``.
ScoreFn = Callable[["Synthesizer", Any], Any]


@contextlib.contextmanager
def _memoised(target: str) -> Iterator[None]:
    """Memoise a pure calibration function (same values, no repeated numerical search per trial)."""
    from unittest import mock

    from tabpriv.audit.mutations import resolve_target

    owner, leaf = resolve_target(target)
    original = getattr(owner, leaf)
    cache: dict[str, Any] = {}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = repr((args, sorted(kwargs.items())))  # arguments are numbers, lists and dataclasses
        if key not in cache:
            cache[key] = original(*args, **kwargs)
        return cache[key]

    with mock.patch.object(owner, leaf, wrapper):
        yield


def run_trials(
    *,
    backend: str,
    scenario: Scenario,
    params: Mapping[str, Any],
    epsilon: float,
    delta: float,
    trials: int,
    seed: int | None,
    score: ScoreFn,
    recorder: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    mutation: Mutation | None = None,
    memoise: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    """Fit ``trials`` synthesizers on ``D`` and as many on ``D'``; return their scores.

    Returns:
        ``(scores_d, scores_d_prime, claimed_epsilon, ledger_parameters)``: the claim is the largest
        epsilon any trial's ledger recorded (they are all equal).

    """
    from tabpriv import Synthesizer

    seeds = trial_seeds(seed, 2 * trials)
    out: list[list[np.ndarray]] = [[], []]
    claimed = 0.0
    facts: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for target in memoise:
            stack.enter_context(_memoised(target))
        if mutation is not None:
            stack.enter_context(mutation.applied())
        for which, df in enumerate((scenario.d, scenario.d_prime)):
            for i in range(trials):
                synth = Synthesizer(
                    backend=backend,
                    epsilon=epsilon,
                    delta=delta,
                    schema=scenario.schema,
                    random_state=int(seeds[which * trials + i]),
                    backend_params=dict(params),
                    clip=True,
                    device="cpu",
                )
                rec_cm = recorder() if recorder is not None else contextlib.nullcontext(None)
                with warnings.catch_warnings():
                    # the canary is clipped on purpose, and every audit run is seeded: both are known
                    warnings.simplefilter("ignore")
                    with rec_cm as rec:
                        synth.fit(df)
                out[which].append(np.atleast_1d(np.asarray(score(synth, rec), dtype=np.float64)))
                claimed = max(claimed, float(synth.ledger_.epsilon_spent))
                if not facts:
                    facts = dict(synth.ledger_.spends[-1].parameters)
                if progress is not None:
                    progress(which * trials + i + 1, 2 * trials)
    return np.stack(out[0]), np.stack(out[1]), claimed, facts


def finish(
    scores_d: np.ndarray,
    scores_p: np.ndarray,
    *,
    started: float,
    delta: float,
    statistic_names: list[str] | None = None,
    **fields: Any,
) -> AuditResult:
    """Threshold on one half, Clopper-Pearson counts on the other half; a finished :class:`AuditResult`."""
    if not (np.all(np.isfinite(scores_d)) and np.all(np.isfinite(scores_p))):
        raise ValueError("An audit score is not finite; the scorer is broken.")
    c, j = split_and_count(scores_d, scores_p, delta)
    res = AuditResult.from_counts(c, started=started, delta=delta, **fields)
    names = statistic_names or [f"statistic {i}" for i in range(int(np.prod(scores_d.shape[1:], dtype=int)))]
    res.parameters["statistic"] = names[j] if names else "score"
    return res


def gaussian_log_sum_exp(values: np.ndarray) -> float:
    """``log(sum(exp(values)))`` computed stably."""
    m = float(np.max(values))
    return m + math.log(float(np.sum(np.exp(values - m))))
