"""Audits of the marginal backends ``mst`` and ``aim``: mean shift, selection law, end to end.

Every trial is a real :class:`tabpriv.Synthesizer` fit on the raw neighbouring tables of
:func:`tabpriv.audit.e2e.mixed_scenario` (two categorical columns ``a``/``b`` and one continuous column
on ``[0, 1]`` with 4 bins: marginal domain sizes ``(2, 2, 4)``). The canary ``(b, b, 1e6 -> 1)`` moves
one count of **every** marginal from the cell of ``(a, a, 0)`` to the cell of ``(b, b, bin 3)``, so
along the unit direction ``e = (counts(D') - counts(D)) / sqrt(2)`` each released marginal shifts by
exactly the count sensitivity ``sqrt(2)``.

What the adversary reads: ``backend_.measurements_`` (every noisy marginal, the released state) and,
for the selection test, the inputs and output of every private selection (white-box).

**The model fit** is mbi's, as shipped, by default (``real_model=True``): it JIT-compiles once per clique
set and process (tens of seconds for the first fits), after which a fit of this scenario costs about
0.03 s (mst) / 0.2 s (aim). ``real_model=False`` (:func:`skip_model_fit`, CLI ``--stand-in-model``)
replaces it by another post-processing of the noisy measurements, the independent model of the noisy
one-way marginals (a real :class:`~tabpriv.backends.marginal.model.ChainSampler`). For ``mst`` that
only replaces the final fit (the selection reads the noisy one-way marginals, as shipped: the released
measurements are bit-identical); for ``aim`` it also replaces the per-round re-estimate that the adaptive
rounds score against, so the rounds (selection, measurement, annealing, the zCDP filter) run the shipped
code against a different public model.

Three tests:

* :func:`marginal_shift_audit` - the parametric mean-shift test of :mod:`tabpriv.audit.parametric`
  (``shift_ratio``) on ``z = <noisy - counts(D), e> / sigma_claim`` per measurement: the one-way
  marginals against the reference fit's planned ``sigma`` (``sigma_one_way`` / ``sigma_initial``), the
  later (selected) marginals against the ``sigma`` the filter charged for them. Statistics: all
  measurements, all one-way, each one-way, all selected. NOT an epsilon bound (see its caveat).
* :func:`selection_audit` - the private selections against their claimed law: OpenDP's / the seeded
  noisy max with Gumbel scale ``s`` picks ``k`` with probability ``softmax(scores / s)_k``. Statistic:
  ``sum over selections of log p(chosen)``, whose null law is simulated from the recorded scores and
  scales (public randomness); flags when the one-sided Monte Carlo p-value is below ``alpha`` (a
  selection with less noise than claimed picks likelier options).
* :func:`audit_mst` / :func:`audit_aim` - the end-to-end audit (Clopper-Pearson lower bound on epsilon,
  :mod:`tabpriv.audit.e2e`) with the Gaussian likelihood-ratio statistic of the one-way marginals.

Command line::

    python -m tabpriv.audit.marginal --backend mst --test shift --mutation noise-x0.5 --trials 300 --epsilon 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.audit.e2e import AuditResult, Scenario, finish, mixed_scenario, run_trials
from tabpriv.audit.mutations import Mutation, scale_argument
from tabpriv.audit.parametric import ALPHA, ParametricResult, ShiftEstimate, _normality_p, shift_ratio

if TYPE_CHECKING:
    from tabpriv import Synthesizer

__all__ = [
    "MARGINAL_PARAMS",
    "audit_aim",
    "audit_mst",
    "marginal_mutations",
    "marginal_shift_audit",
    "selection_audit",
    "skip_model_fit",
]

_M = "tabpriv.backends.marginal"

#: The small parameters every audit fit uses (the model fit is skipped unless ``real_model``).
MARGINAL_PARAMS: dict[str, dict[str, Any]] = {
    "mst": {"iters": 50},
    "aim": {"iters": 50, "round_iters": 10, "rounds": 6},
}


# -- the model stand-in -----------------------------------------------------------------------------
def _independent_chain(measurements: Any, domain: Any) -> Any:
    """A real ChainSampler of independent columns from the noisy one-way marginals (post-processing)."""
    from tabpriv.backends.marginal.model import ChainSampler

    ones = {m.clique[0]: m for m in measurements if len(m.clique) == 1}
    cdfs = []
    for i, size in enumerate(domain.sizes):
        p = np.clip(np.asarray(ones[i].noisy, dtype=np.float64), 0.0, None) if i in ones else np.ones(size)
        p = p / p.sum() if p.sum() > 0 else np.full(size, 1.0 / size)
        cdf = np.cumsum(p).reshape(1, size)
        cdf[:, -1] = 1.0
        cdfs.append(cdf)
    return ChainSampler(list(range(len(domain.sizes))), [()] * len(domain.sizes), cdfs)


class _StandInChain:
    """Stands in for ``ChainSampler`` where the backends build it from a model."""

    @staticmethod
    def from_model(model: Any, domain: Any) -> Any:
        return _independent_chain(model, domain)


def _stand_in_estimate(domain: Any, measurements: Any, n_rows: int, **_: Any) -> Any:
    return list(measurements)  # the "model" is the measurements themselves


@contextlib.contextmanager
def skip_model_fit() -> Iterator[None]:
    """Replace mbi's model fit by the independent model of the noisy one-way marginals (see module doc)."""
    from unittest import mock

    import tabpriv.backends.marginal.aim as aim
    import tabpriv.backends.marginal.common as common
    import tabpriv.backends.marginal.mst as mst

    with contextlib.ExitStack() as stack:
        for mod in (mst, aim):
            stack.enter_context(mock.patch.object(mod, "estimate", _stand_in_estimate))
        for mod in (aim, common):
            stack.enter_context(mock.patch.object(mod, "ChainSampler", _StandInChain))
        yield


def _model_context(real_model: bool) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if real_model else skip_model_fit()


# -- exact counts of the scenario, from the values (not through the backend's data pass) --------------
def _scenario_codes(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Level codes of the replaced row in ``D`` and of the canary, and the domain sizes.

    Recomputed from the declared schema: a categorical level is the category's index, a continuous
    column with ``bins`` hint ``k`` on ``[lo, hi]`` has ``k`` equal-width bins (the canary is clipped to
    ``hi``, the last bin). Every row of ``D`` equals row 0.
    """
    rows = []
    sizes: list[int] = []
    for df in (scenario.d, scenario.d_prime):
        codes = []
        sizes = []
        for col in scenario.schema:
            v = df[col.name].iloc[0]
            if col.kind == "categorical":
                cats = list(col.categories or ())
                codes.append(cats.index(v))
                sizes.append(len(cats))
            else:
                lo, hi, k = float(col.lower), float(col.upper), int(col.bins or 32)  # type: ignore[arg-type]
                x = min(max(float(v), lo), hi)
                codes.append(min(int((x - lo) / (hi - lo) * k), k - 1))
                sizes.append(k)
        rows.append(np.array(codes, dtype=np.int64))
    return rows[0], rows[1], tuple(sizes)


class _Counts:
    """``counts(D)`` and the unit direction ``counts(D') - counts(D)`` of any clique (auditor knows D)."""

    def __init__(self, scenario: Scenario) -> None:
        self.x, self.xp, self.sizes = _scenario_codes(scenario)
        self.n = len(scenario.d)

    def base_and_direction(self, clique: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(self.sizes[i] for i in clique)
        cells = int(np.prod(shape))
        ix = int(np.ravel_multi_index(tuple(int(self.x[i]) for i in clique), shape))
        ixp = int(np.ravel_multi_index(tuple(int(self.xp[i]) for i in clique), shape))
        base = np.zeros(cells)
        base[ix] = self.n
        d = np.zeros(cells)
        d[ix] -= 1.0
        d[ixp] += 1.0
        return base, d


# -- mutations --------------------------------------------------------------------------------------
def _no_noise(original: Callable[..., Any]) -> Callable[..., Any]:
    def noisy_counts(counts: Any, sigma: float, context: Any, label: str) -> np.ndarray:
        return np.asarray(counts, dtype=np.int64)

    return noisy_counts


def _first_unnoised(original: Callable[..., Any]) -> Callable[..., Any]:
    def noisy_counts(counts: Any, sigma: float, context: Any, label: str) -> np.ndarray:
        if label == "one-way 0":
            return np.asarray(counts, dtype=np.int64)
        return np.asarray(original(counts, sigma, context, label))

    return noisy_counts


def _argmax(original: Callable[..., Any]) -> Callable[..., Any]:
    def private_select(scores: Any, scale: float, context: Any, label: str) -> int:
        return int(np.argmax(np.asarray(scores, dtype=np.float64)))

    return private_select


def marginal_mutations(backend: str) -> dict[str, Mutation]:
    """The deliberately broken variants of ``mst`` / ``aim``, at the seams where the backends call them.

    The backends bind ``noisy_counts`` and ``private_select`` by name at import (``from ... import``),
    so the seams patched are ``marginal.common:noisy_counts`` (the one call, in ``measure``) and
    ``marginal.<backend>:private_select``; patching ``marginal.measure`` itself would change nothing.
    """
    noise = f"{_M}.common:noisy_counts"
    select = f"{_M}.{backend}:private_select"
    return {
        "noise-x0.5": Mutation(
            "noise-x0.5", "discrete Gaussian sigma of every count halved, charge unchanged", noise,
            scale_argument(1, "sigma", 0.5),
        ),
        "noise-x0.25": Mutation(
            "noise-x0.25", "discrete Gaussian sigma of every count quartered, charge unchanged", noise,
            scale_argument(1, "sigma", 0.25),
        ),
        "no-noise": Mutation(
            "no-noise", "every marginal released exact (noisy_counts returns the counts)", noise, _no_noise
        ),
        "unnoised-step": Mutation(
            "unnoised-step", "the first one-way marginal released without noise", noise, _first_unnoised
        ),
        "select-argmax": Mutation(
            "select-argmax", "every private selection replaced by the argmax of the exact scores (no "
            "noise), charge unchanged", select, _argmax,
        ),
        "select-noise-x0.25": Mutation(
            "select-noise-x0.25", "the Gumbel scale of every selection quartered, charge unchanged",
            select, scale_argument(1, "scale", 0.25),
        ),
    }  # fmt: skip


# -- mean-shift test ---------------------------------------------------------------------------------
def _claimed_one_way_sigma(backend: str, ref: dict[str, Any]) -> float:
    return float(ref["sigma_one_way"] if backend == "mst" else ref["sigma_initial"])


def _shift_scorer(
    backend: str, counts: _Counts, ref: dict[str, Any]
) -> Callable[[Synthesizer, Any], np.ndarray]:
    sigma1 = _claimed_one_way_sigma(backend, ref)
    c = len(counts.sizes)

    def score(synth: Synthesizer, _: Any) -> np.ndarray:
        one_z: list[float] = []
        one_mu: list[float] = []
        later_z: list[float] = []
        later_mu: list[float] = []
        dom = synth.backend_.domain_  # type: ignore[attr-defined]
        for m in synth.backend_.measurements_:  # type: ignore[attr-defined]
            base, d = counts.base_and_direction(m.clique)
            base, d = m.answer(base, dom), m.answer(d, dom)  # a coarse measurement's own cells
            nd = float(np.linalg.norm(d))
            sigma = sigma1 if len(m.clique) == 1 else float(m.sigma)
            z = float((np.asarray(m.noisy, dtype=np.float64) - base) @ d) / nd / sigma
            if len(m.clique) == 1 and len(one_z) < c:
                one_z.append(z)
                one_mu.append(nd / sigma)
            else:
                later_z.append(z)
                later_mu.append(nd / sigma)

        def pooled(zs: list[float], mus: list[float]) -> tuple[float, float]:
            mu = np.asarray(mus)
            norm = float(np.sqrt(mu @ mu))
            return (float(np.asarray(zs) @ mu) / norm, norm) if norm > 0 else (0.0, 0.0)

        z_all, mu_all = pooled(one_z + later_z, one_mu + later_mu)
        z_one, mu_one = pooled(one_z, one_mu)
        z_later, mu_later = pooled(later_z, later_mu)
        zs = [z_all, z_one, *one_z, z_later]
        mus = [mu_all, mu_one, *one_mu, mu_later]
        return np.array(zs + mus)

    return score


def _shift(z_d: np.ndarray, z_p: np.ndarray, mu_p: np.ndarray, alpha: float) -> ShiftEstimate:
    """:func:`shift_ratio`, except that a statistic with no spread at all (an exact release) is infinite."""
    if float(np.std(z_d)) == 0.0 and float(np.std(z_p - mu_p)) == 0.0 and np.any(mu_p > 0):
        return ShiftEstimate(math.inf, math.inf, math.inf, float(np.mean(mu_p)))
    return shift_ratio(z_d, z_p, mu_p, alpha)


def marginal_shift_audit(
    backend: str,
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
    alpha: float = ALPHA,
    real_model: bool = True,
) -> ParametricResult:
    """Mean-shift test of ``mst`` / ``aim`` (optionally mutated) against the claimed discrete Gaussian.

    As :func:`tabpriv.audit.parametric.parametric_audit`: the claim comes from a reference fit of the
    unmutated code; ``trials`` fits on ``D`` and as many on ``D'`` with the mutation applied; flag when
    the lower confidence bound of ``mu_true / mu_claim`` exceeds 1 for any statistic (Bonferroni).
    """
    scenario = mixed_scenario(n_rows)
    counts = _Counts(scenario)
    params = dict(MARGINAL_PARAMS[backend])
    t0 = time.perf_counter()
    with _model_context(real_model):
        _, _, claimed, ref = run_trials(
            backend=backend, scenario=scenario, params=params, epsilon=epsilon, delta=delta, trials=1,
            seed=None if seed is None else seed + 10**6, score=lambda s, r: 0.0,
        )  # fmt: skip
        scorer = _shift_scorer(backend, counts, ref)
        s_d, s_p, _, _ = run_trials(
            backend=backend, scenario=scenario, params=params, epsilon=epsilon, delta=delta,
            trials=trials, seed=seed, score=scorer, mutation=mutation,
        )  # fmt: skip
    k = s_d.shape[1] // 2
    c = k - 3
    names = ["all measurements", "all one-way", *(f"one-way {i}" for i in range(c)), "all selected"]
    a = alpha / k
    ests = [_shift(s_d[:, j], s_p[:, j], s_p[:, k + j], a) for j in range(k)]
    j = max(range(k), key=lambda i: ests[i].low)
    if ests[0].low > 1.0 or ests[j].low <= 1.0:
        j = 0
    chosen = ests[j]
    return ParametricResult(
        backend=backend,
        test="mean shift of the standardised likelihood-ratio score (Gaussian model)",
        mutation=None if mutation is None else mutation.name,
        trials=trials,
        claimed_epsilon=float(claimed),
        delta=delta,
        claimed_mu=chosen.mean_claim,
        mu_hat=chosen.ratio * chosen.mean_claim,
        mu_low=chosen.low * chosen.mean_claim,
        mu_high=chosen.high * chosen.mean_claim,
        ratio=chosen.ratio,
        ratio_low=chosen.low,
        ratio_high=chosen.high,
        statistic=names[j],
        flagged=any(e.low > 1.0 for e in ests),
        over_noised=ests[0].high < 0.5,
        normality_p=_normality_p(s_d[:, 0]),
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        parameters={
            "setting": f"n={n_rows}, domain (2, 2, 4), model {'mbi' if real_model else 'stand-in'}",
            "backend_params": params,
            "claim": {k_: v for k_, v in ref.items() if k_.startswith("sigma") or k_ == "rho"},
            "per_statistic": {n: asdict(e) for n, e in zip(names, ests, strict=True)},
        },
    )


# -- selection test ----------------------------------------------------------------------------------
class _SelectionRecorder:
    """Records ``(scores, claimed scale, chosen index)`` of every private selection of one fit."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.calls: list[tuple[np.ndarray, float, int]] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _SelectionRecorder:
        from unittest import mock

        from tabpriv.audit.mutations import resolve_target

        owner, _ = resolve_target(f"{_M}.{self.backend}:private_select")
        orig = owner.private_select  # the mutated selection when a mutation is applied

        def private_select(scores: Any, scale: float, context: Any, label: str) -> int:
            k = int(orig(scores, scale, context, label))
            self.calls.append((np.asarray(scores, dtype=np.float64).copy(), float(scale), k))
            return k

        self._stack.enter_context(mock.patch.object(owner, "private_select", private_select))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()


def _log_softmax(scores: np.ndarray, scale: float) -> np.ndarray:
    u = scores / scale
    m = float(u.max())
    return u - (m + math.log(float(np.exp(u - m).sum())))


def selection_audit(
    backend: str,
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
    alpha: float = ALPHA,
    n_mc: int = 20_000,
    real_model: bool = True,
) -> ParametricResult:
    """The recorded selections against the exponential mechanism's law at their claimed Gumbel scale.

    ``T = sum log softmax(scores / scale)[chosen]`` over every selection of ``trials`` fits on ``D`` and
    as many on ``D'``; its null law is simulated by drawing each selection afresh from the claimed
    probabilities (public, seeded). Flags when ``P_null(T >= observed) < alpha``.
    """
    scenario = mixed_scenario(n_rows)
    params = dict(MARGINAL_PARAMS[backend])
    t0 = time.perf_counter()
    calls: list[tuple[np.ndarray, float, int]] = []

    def score(synth: Synthesizer, rec: _SelectionRecorder) -> float:
        calls.extend(rec.calls)
        return float(len(rec.calls))

    with _model_context(real_model):
        _, _, claimed, _ = run_trials(
            backend=backend, scenario=scenario, params=params, epsilon=epsilon, delta=delta,
            trials=trials, seed=seed, score=score, recorder=lambda: _SelectionRecorder(backend),
            mutation=mutation,
        )  # fmt: skip
    rng = np.random.default_rng(12345)  # public: the null law of the statistic
    observed = 0.0
    expected = 0.0
    sims = np.zeros(n_mc)
    for scores, scale, k in calls:
        lp = _log_softmax(scores, scale)
        p = np.exp(lp)
        p = p / p.sum()
        observed += float(lp[k])
        expected += float(p @ lp)
        sims += lp[rng.choice(len(p), size=n_mc, p=p)]
    p_value = float((1 + np.sum(sims >= observed)) / (n_mc + 1))
    lo, hi = (float(v) for v in np.quantile(sims, [alpha, 1 - alpha]))
    return ParametricResult(
        backend=backend,
        test="selection law (white-box: sum of log P(chosen) under the claimed exponential mechanism)",
        mutation=None if mutation is None else mutation.name,
        trials=trials,
        claimed_epsilon=float(claimed),
        delta=delta,
        claimed_mu=expected,
        mu_hat=observed,
        mu_low=lo,
        mu_high=hi,
        ratio=observed / expected if expected else float("nan"),
        ratio_low=lo / expected if expected else float("nan"),
        ratio_high=hi / expected if expected else float("nan"),
        statistic="sum over selections of log P(chosen)",
        flagged=p_value < alpha,
        over_noised=False,
        normality_p=None,
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        parameters={
            "setting": f"n={n_rows}, domain (2, 2, 4), model {'mbi' if real_model else 'stand-in'}",
            "backend_params": params,
            "selections": len(calls),
            "p_value": p_value,
            "null_draws": n_mc,
        },
    )


# -- end-to-end audit --------------------------------------------------------------------------------
def _e2e(
    backend: str,
    trials: int,
    epsilon: float,
    delta: float,
    seed: int | None,
    mutation: Mutation | None,
    n_rows: int,
    real_model: bool,
) -> AuditResult:
    scenario = mixed_scenario(n_rows)
    counts = _Counts(scenario)
    c = len(counts.sizes)

    def score(synth: Synthesizer, _: Any) -> np.ndarray:
        per = []
        for m in synth.backend_.measurements_[:c]:  # type: ignore[attr-defined]
            base, d = counts.base_and_direction(m.clique)
            per.append(float((np.asarray(m.noisy, dtype=np.float64) - base) @ d))
        return np.array([sum(per), *per])

    params = dict(MARGINAL_PARAMS[backend])
    t0 = time.perf_counter()
    with _model_context(real_model):
        s_d, s_p, claimed, facts = run_trials(
            backend=backend, scenario=scenario, params=params, epsilon=epsilon, delta=delta,
            trials=trials, seed=seed, score=score, mutation=mutation,
        )  # fmt: skip
    return finish(
        s_d,
        s_p,
        started=t0,
        delta=delta,
        statistic_names=["LR, all one-way marginals", *(f"one-way {i}" for i in range(c))],
        backend=backend,
        step="Synthesizer.fit end to end up to the released measurements (schema, domain, data pass, "
        "discrete Gaussian counts, private selections, zCDP filter); the mbi model fit "
        + ("run" if real_model else "replaced by the independent model of the noisy one-way marginals"),
        adjacency="replace-one (raw row 0 replaced by a canary: other category everywhere, 1e6 clipped to 1)",
        trials=trials,
        claimed_epsilon=claimed,
        mutation=None if mutation is None else mutation.name,
        parameters={
            "n_rows": n_rows,
            "target_epsilon": epsilon,
            "backend_params": params,
            **{k: v for k, v in facts.items() if isinstance(v, int | float | bool)},
        },
    )


def audit_mst(
    trials: int,
    epsilon: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
    real_model: bool = True,
) -> AuditResult:
    """End-to-end audit of ``mst``: LR statistic of the noisy one-way marginals (and each one)."""
    return _e2e("mst", trials, epsilon, delta, seed, mutation, n_rows, real_model)


def audit_aim(
    trials: int,
    epsilon: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
    real_model: bool = True,
) -> AuditResult:
    """End-to-end audit of ``aim``: LR statistic of the noisy one-way marginals (and each one)."""
    return _e2e("aim", trials, epsilon, delta, seed, mutation, n_rows, real_model)


def main(argv: list[str] | None = None) -> int:
    """``python -m tabpriv.audit.marginal``: one shift / selection audit, a JSON record, one line out."""
    import sys

    from tabpriv.audit.parametric import CAVEAT
    from tabpriv.audit.targets import get_mutation

    ap = argparse.ArgumentParser(prog="python -m tabpriv.audit.marginal", description=__doc__)
    ap.add_argument("--backend", choices=["mst", "aim"], required=True)
    ap.add_argument("--test", choices=["shift", "selection"], default="shift")
    ap.add_argument("--mutation", default=None)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--epsilon", type=float, default=2.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--stand-in-model",
        action="store_true",
        help="replace mbi's model fit by the post-processing stand-in",
    )
    ap.add_argument("--json", default=None, help="append the result to this JSON list file")
    args = ap.parse_args(argv)
    mutation = get_mutation(args.backend, args.mutation)
    fn = marginal_shift_audit if args.test == "shift" else selection_audit
    res = fn(
        args.backend,
        args.trials,
        args.epsilon,
        args.delta,
        args.seed,
        mutation,
        real_model=not args.stand_in_model,
    )
    d = res.to_dict()
    d["command"] = "python -m tabpriv.audit.marginal " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        from pathlib import Path

        path = Path(args.json)
        rows = json.loads(path.read_text()) if path.exists() else []
        rows.append(d)
        path.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    sys.stdout.write(
        f"{res.backend} {res.test.split(' (')[0]} {res.mutation or 'shipped'}: flagged={res.flagged} "
        f"statistic={res.statistic} estimate={res.mu_hat:.4g} CI=[{res.mu_low:.4g}, {res.mu_high:.4g}] "
        f"claim={res.claimed_mu:.4g} trials={res.trials} {res.seconds:.0f}s "
        f"p={res.parameters.get('p_value', '-')}\n{CAVEAT}\n"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
