"""Parametric audit: the implementation against its own claimed Gaussian noise (NOT an epsilon bound).

The end-to-end audits of :mod:`tabpriv.audit.targets` give a rigorous, non-parametric epsilon lower
bound (Clopper-Pearson), which needs ~10^6 trials to see a 2x under-noised Gaussian. This module adds
a second, clearly weaker kind of evidence with power at a few hundred trials:

**Mean-shift test** (``independent``, ``slicing``, ``dpsgd-vae``, ``lipschitz-vae`` at ``q = 1``). Each
backend claims a Gaussian mechanism (independent's discrete Gaussian is within ~1e-9 of a Gaussian at
``sigma >= 1``; slicing's release given the public ``U``; a DP-SGD step). The auditor computes, per
trial and per statistic, a score standardised by the *claimed* noise, ``z = <release - f(D), e> /
sigma_claim`` along a unit direction ``e`` it knows, and the shift the claim allows along it,
``mu_claim = <f(D') - f(D), e> / sigma_claim`` (independent: ``Delta / sigma``; slicing: ``|(x' - x)U| /
sigma`` given ``U``; DP-SGD: ``2 / z`` per step and ``2 sqrt(T) / z`` for the sum over ``T`` full-batch
steps, in units of the clipping norm ``C``). Under the claim, ``z`` is ``N(0, 1)`` on ``D`` and
``N(mu_claim, 1)`` on ``D'`` (DP-SGD: a shift of at most ``mu_claim``, since clipping bounds it). The
audit estimates the ratio ``R = mu_true / mu_claim`` as (fitted shift) / (pooled standard deviation)
with a delta-method standard error and **flags** when the one-sided lower confidence bound of ``R``
exceeds 1 (noise smaller or sensitivity larger than claimed: noise x1/2 and sensitivity x2 both give
``R = 2``). The confidence level is ``1 - alpha`` with ``alpha = 0.001`` split (Bonferroni) over the
statistics of a backend (the aggregate and one per released block / step), so the false-alarm rate of a
run on correct code is at most ~0.1% under the Gaussian model. An upper bound below 1/2 is *reported*
(over-noised, or a weak score direction), never flagged. The claimed ``sigma``/``z`` come from a
reference fit of the **unmutated** code (its ledger), so a mutation that changes what the ledger
records is still tested against the shipped claim.

The Gaussian assumption is checked (Shapiro-Wilk on up to 2,000 ``D``-side scores of the aggregate
statistic) and its p-value reported. This is a test of the implementation against its claimed noise,
valid under that assumption; **it is not a rigorous epsilon lower bound**, and every output says so.

**Sampler test** (``sampler-shuffle``). With ``q < 1`` the score is a mixture; instead the sampler's
own output is recorded (white-box: the batches ``poisson_batch`` returns, the subset dp2-vae picks each
step) and the dispersion of the per-row appearance counts over the ``T`` steps is compared with its law
under the claimed sampler (Binomial(T, q) per row for Poisson sampling; Multinomial(T, 1/K) for the
1-of-K choice), simulated with public randomness: a shuffle gives (nearly) fixed counts, far less
dispersed. Flags when the two-sided Monte Carlo p-value is below ``alpha``.

Command line::

    python -m tabpriv.audit.parametric --backend independent --mutation noise-x0.5 --trials 500 --json OUT
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.audit.e2e import Scenario, mixed_scenario, run_trials
from tabpriv.audit.mutations import Mutation

if TYPE_CHECKING:
    from tabpriv import Synthesizer

__all__ = [
    "CAVEAT",
    "ParametricResult",
    "parametric_audit",
    "sampler_audit",
    "shift_ratio",
]

logger = logging.getLogger(__name__)

#: Printed with every result.
CAVEAT = (
    "Parametric test of the implementation against its own claimed Gaussian noise, valid under the "
    "Gaussian assumption (checked, p-value reported); NOT a rigorous epsilon lower bound."
)

#: Overall false-alarm level of one audit run (split over its statistics).
ALPHA = 1e-3


@dataclass
class ParametricResult:
    """Outcome of one parametric audit (one backend, optionally one mutation)."""

    backend: str
    test: str
    mutation: str | None
    trials: int
    claimed_epsilon: float
    delta: float
    claimed_mu: float
    mu_hat: float
    mu_low: float
    mu_high: float
    ratio: float
    ratio_low: float
    ratio_high: float
    statistic: str
    flagged: bool
    over_noised: bool
    normality_p: float | None
    seconds: float
    alpha: float = ALPHA
    parameters: dict[str, Any] = field(default_factory=dict)
    caveat: str = CAVEAT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class ShiftEstimate:
    """``R = mu_true / mu_claim`` with a confidence interval (one statistic)."""

    ratio: float
    low: float
    high: float
    mean_claim: float


def _z_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def shift_ratio(z_d: np.ndarray, z_p: np.ndarray, mu_p: np.ndarray, alpha: float) -> ShiftEstimate:
    """Estimate ``R`` from standardised scores: ``z_d ~ N(c, s^2)``, ``z_p ~ N(c + lambda mu_p, s^2)``.

    ``lambda`` is the least-squares shift ratio, ``s`` the pooled residual standard deviation and
    ``R = lambda / s``; its standard error is the delta method's
    ``sqrt(1 / sum mu^2 + (mean mu / mean mu^2)^2 / n_d + R^2 / (2 (N - 2)))`` (in units of ``R``).
    The interval is two-sided at level ``1 - 2 alpha`` (each end one-sided at ``1 - alpha``).

    Raises:
        ValueError: Fewer than 3 trials per side, or every claimed shift is 0.

    """
    z_d, z_p, mu_p = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (z_d, z_p, mu_p))
    if len(z_d) < 3 or len(z_p) < 3 or not np.any(mu_p > 0):
        raise ValueError(
            f"The shift test needs at least 3 trials per side and a positive claimed shift; got "
            f"{len(z_d)} and {len(z_p)} trials and max claimed shift {float(np.max(mu_p, initial=0))}."
        )
    c = float(z_d.mean())
    ss = float(mu_p @ mu_p)
    lam = float((z_p - c) @ mu_p) / ss
    resid = np.concatenate([z_d - c, z_p - c - lam * mu_p])
    n = len(resid)
    s = max(float(math.sqrt(resid @ resid / (n - 2))), 1e-300)
    r = lam / s
    se = math.sqrt(
        1.0 / ss + (float(mu_p.mean()) / float((mu_p**2).mean())) ** 2 / len(z_d) + r**2 / (2 * (n - 2))
    )
    q = _z_quantile(1 - alpha)
    return ShiftEstimate(r, r - q * se, r + q * se, float(mu_p.mean()))


def _normality_p(z: np.ndarray) -> float | None:
    from scipy.stats import shapiro

    z = np.asarray(z, dtype=np.float64)[:2000]
    if len(z) < 8 or float(np.std(z)) == 0.0:
        return None
    return float(shapiro(z).pvalue)


# -- per-backend scorers: (z vector, claimed-mu vector) per trial -------------------------------------
#: ``scorer(synth, recorder) -> (z, mu)`` with one entry per candidate statistic (aggregate first).
Scorer = Callable[["Synthesizer", Any], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Plan:
    backend: str
    scenario: Scenario
    params: dict[str, Any]
    memoise: tuple[str, ...]
    make_scorer: Callable[[dict[str, Any]], Scorer]  # from the reference ledger's parameters
    names: Callable[[int], list[str]]
    recorder: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    wrap: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    setting: str = ""


def _independent_plan(n_rows: int) -> _Plan:
    from tabpriv.audit.targets import _IND, _independent_direction, _released_counts

    scenario = mixed_scenario(n_rows)
    bins = 32
    base, direction, sizes = _independent_direction(scenario, bins)
    cuts = np.cumsum(sizes)[:-1]
    blocks = np.split(direction, cuts)

    def make(ref: dict[str, Any]) -> Scorer:
        sigma = float(ref["sigma"])

        def score(synth: Synthesizer, _: Any) -> tuple[np.ndarray, np.ndarray]:
            noise = _released_counts(synth) - base
            parts = np.split(noise, cuts)
            z = [noise @ direction / np.linalg.norm(direction) / sigma]
            mu = [np.linalg.norm(direction) / sigma]
            for p, d in zip(parts, blocks, strict=True):
                z.append(p @ d / np.linalg.norm(d) / sigma)
                mu.append(np.linalg.norm(d) / sigma)
            return np.array(z), np.array(mu)

        return score

    return _Plan(
        "independent", scenario, {"bins": bins}, (f"{_IND}:noise_calibration",), make,
        lambda k: ["all histograms", *(f"histogram {i}" for i in range(k - 1))],
        setting=f"n={n_rows}, 3 histograms",
    )  # fmt: skip


def _slicing_plan(n_rows: int) -> _Plan:
    from tabpriv.audit.targets import _SLI, _skip_generator_training, _spans
    from tabpriv.backends.slicing.mechanism import enforce_blocks

    scenario = mixed_scenario(n_rows)
    spans = _spans(scenario)
    x = enforce_blocks(scenario.encoded("d")[:1], spans)[0].astype(np.float64)
    xp = enforce_blocks(scenario.encoded("p")[:1], spans)[0].astype(np.float64)

    def make(ref: dict[str, Any]) -> Scorer:
        sigma = float(ref["sigma"])

        def score(synth: Synthesizer, _: Any) -> tuple[np.ndarray, np.ndarray]:
            rel = synth.backend_.release_  # type: ignore[attr-defined]
            u = np.asarray(rel.projection, dtype=np.float64)
            r = np.asarray(rel.noisy, dtype=np.float64)[0] - x @ u
            a = (xp - x) @ u
            na = float(np.linalg.norm(a))
            sign = np.where(a >= 0, 1.0, -1.0)
            z = np.array([r @ a / na / sigma, *(r * sign / sigma)])
            mu = np.array([na / sigma, *(np.abs(a) / sigma)])
            return z, mu

        return score

    return _Plan(
        "slicing", scenario, {"n_slices": 4, "k": 2}, (f"{_SLI}:calibrate_sigma",), make,
        lambda k: ["row 0, all projections", *(f"row 0, projection {i}" for i in range(k - 1))],
        wrap=_skip_generator_training, setting=f"n={n_rows}, d=5, m'=8",
    )  # fmt: skip


def _dpsgd_plan(backend: str, n_rows: int, epochs: int) -> _Plan:
    import torch

    from tabpriv.audit.targets import _DPSGD, StepRecorder, _clipped, _dpsgd_grad_of, _flat, check_steps

    torch.set_num_threads(1)
    scenario = mixed_scenario(n_rows)
    x = torch.as_tensor(scenario.encoded("d")[:1], dtype=torch.float32)
    xp = torch.as_tensor(scenario.encoded("p")[:1], dtype=torch.float32)
    clip = 1e-3
    params: dict[str, Any] = {"epochs": epochs, "batch_size": n_rows, "hidden": 8, "latent_dim": 2}
    if backend == "dpsgd-vae":
        params["clip"] = clip
    else:
        params.update({"mode": "dp", "release": "prior", "max_grad_norm": clip})

    def make(ref: dict[str, Any]) -> Scorer:
        zmult = float(ref["noise_multiplier"])
        c = float(ref["clip_norm"]) if "clip_norm" in ref else clip
        steps = int(ref["steps"])
        if float(ref.get("sampling_probability", 1.0)) != 1.0:
            raise ValueError("The DP-SGD mean-shift test needs q = 1 (batch_size = n_rows).")

        def score(synth: Synthesizer, rec: StepRecorder) -> tuple[np.ndarray, np.ndarray]:
            check_steps(rec, steps)
            grad_of = _dpsgd_grad_of(rec)
            zs = np.empty(steps)
            for t in range(steps):
                diff = _clipped(grad_of(t, xp), c) - _clipped(grad_of(t, x), c)
                e = diff / (float(diff.norm()) + 1e-30)
                # p.grad = (sum of clipped + N(0, (zC)^2)) / b with b = n_rows (q = 1)
                zs[t] = float(_flat(rec.grads[t]) @ e) * n_rows / (zmult * c)
            mu_step = 2.0 / zmult  # clipping: the canary moves the sum by at most 2C along any e
            z = np.array([zs.sum() / math.sqrt(steps), *zs])
            mu = np.array([mu_step * math.sqrt(steps), *([mu_step] * steps)])
            return z, mu

        return score

    return _Plan(
        backend, scenario, params, (f"{_DPSGD}:calibrate_noise_multiplier",), make,
        lambda k: ["sum over steps", *(f"step {t}" for t in range(k - 1))],
        recorder=lambda: StepRecorder("dpsgd"), setting=f"n={n_rows}, q=1, T={epochs}",
    )  # fmt: skip


def _dp2_plan(steps: int) -> _Plan:
    import torch

    from tabpriv.audit.targets import StepRecorder, _clipped, _dp2_grad_of, _flat, check_steps

    torch.set_num_threads(1)
    scenario = mixed_scenario(1)  # K = 1 subset of 1 row: the canary's subset is used at every step
    x = torch.as_tensor(scenario.encoded("d")[:1], dtype=torch.float32)
    xp = torch.as_tensor(scenario.encoded("p")[:1], dtype=torch.float32)
    params: dict[str, Any] = {"n_subsets": 1, "steps": steps, "pretrain_steps": 2, "batch_size": 1,
                              "hidden": 8, "latent_dim": 2, "clip": 1e-3}  # fmt: skip

    def make(ref: dict[str, Any]) -> Scorer:
        std = float(ref["noise_std"])
        c = float(ref["clip_norm"])
        mu_step = float(ref["l2_sensitivity_per_step"]) / std
        n_steps = int(ref["steps"])

        def score(synth: Synthesizer, rec: StepRecorder) -> tuple[np.ndarray, np.ndarray]:
            check_steps(rec, n_steps)
            grad_of = _dp2_grad_of(rec, synth)
            zs = np.empty(n_steps)
            for t in range(n_steps):
                diff = _clipped(grad_of(t, xp), c) - _clipped(grad_of(t, x), c)
                e = diff / (float(diff.norm()) + 1e-30)
                zs[t] = float(_flat(rec.grads[t]) @ e) / std  # p.grad = clipped update + N(0, std^2)
            z = np.array([zs.sum() / math.sqrt(n_steps), *zs])
            mu = np.array([mu_step * math.sqrt(n_steps), *([mu_step] * n_steps)])
            return z, mu

        return score

    return _Plan(
        "dp2-vae", scenario, params,
        ("tabpriv.backends.vae.dp2:calibrate_dp2vae", "tabpriv.backends.vae.dp2:dp2vae_epsilon_curve",
         "tabpriv.backends.vae.dp2:dp2vae_epsilon"),
        make, lambda k: ["sum over steps", *(f"step {t}" for t in range(k - 1))],
        recorder=lambda: StepRecorder("dp2"), setting=f"K=1, n=1, T={steps}",
    )  # fmt: skip


def _plan(backend: str, n_rows: int | None, epochs: int) -> _Plan:
    from tabpriv.errors import UnknownBackendError

    if backend == "independent":
        return _independent_plan(n_rows or 20)
    if backend == "slicing":
        return _slicing_plan(n_rows or 20)
    if backend in ("dpsgd-vae", "lipschitz-vae"):
        return _dpsgd_plan(backend, n_rows or 4, epochs)
    if backend == "dp2-vae":
        return _dp2_plan(epochs)
    raise UnknownBackendError(
        f"No parametric mean-shift audit for backend {backend!r}; available: independent, slicing, "
        "dpsgd-vae, lipschitz-vae, dp2-vae (sampler mutations: use --test sampler)."
    )


def parametric_audit(
    backend: str,
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int | None = None,
    epochs: int = 10,
    alpha: float = ALPHA,
) -> ParametricResult:
    """Mean-shift test of ``backend`` (optionally mutated) against its claimed Gaussian noise.

    The claim (``sigma`` or ``z``) is read from the ledger of a reference fit of the unmutated code
    with the same ``epsilon``, ``delta`` and configuration; then ``trials`` fits on ``D`` and as many
    on ``D'`` run through :func:`tabpriv.audit.e2e.run_trials` with the mutation applied.
    """
    plan = _plan(backend, n_rows, epochs)
    t0 = time.perf_counter()
    wrap = plan.wrap() if plan.wrap is not None else contextlib.nullcontext()
    with wrap:
        _, _, claimed, ref = run_trials(
            backend=backend, scenario=plan.scenario, params=plan.params, epsilon=epsilon, delta=delta,
            trials=1, seed=None if seed is None else seed + 10**6, score=lambda s, r: 0.0,
            recorder=plan.recorder, memoise=plan.memoise,
        )  # fmt: skip
        scorer = plan.make_scorer(ref)
        s_d, s_p, _, _ = run_trials(
            backend=backend, scenario=plan.scenario, params=plan.params, epsilon=epsilon, delta=delta,
            trials=trials, seed=seed, score=lambda s, r: np.concatenate(scorer(s, r)),
            recorder=plan.recorder, mutation=mutation, memoise=plan.memoise,
        )  # fmt: skip
    k = s_d.shape[1] // 2
    names = plan.names(k)
    a = alpha / k
    ests = [shift_ratio(s_d[:, j], s_p[:, j], s_p[:, k + j], a) for j in range(k)]
    j = max(range(k), key=lambda i: ests[i].low)  # the flag: any statistic (Bonferroni over k)
    e0 = ests[0]
    if e0.low > 1.0 or ests[j].low <= 1.0:
        j = 0  # report the aggregate unless only a per-block/per-step statistic flags
    chosen, name = ests[j], names[j]
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
        statistic=name,
        flagged=any(e.low > 1.0 for e in ests),
        over_noised=e0.high < 0.5,
        normality_p=_normality_p(s_d[:, 0]),
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        parameters={
            "setting": plan.setting,
            "backend_params": plan.params,
            "claim": {k_: v for k_, v in ref.items() if k_ in ("sigma", "l2_sensitivity", "noise_multiplier",
                                                            "clip_norm", "steps", "rho", "noise_std",
                                                            "l2_sensitivity_per_step")},
            "per_statistic": {n: asdict(e) for n, e in zip(names, ests, strict=True)},
        },
    )  # fmt: skip


# -- sampler test -----------------------------------------------------------------------------------
class _SamplerRecorder:
    """Records, per fit, the rows of every Poisson batch or the subset dp2-vae picks each step."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.draws: list[np.ndarray] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _SamplerRecorder:
        from unittest import mock

        from tabpriv.audit.mutations import resolve_target

        if self.kind == "poisson":
            owner, _ = resolve_target("tabpriv.backends.vae.dpsgd_loop:poisson_batch")
            orig = owner.poisson_batch  # the mutated sampler when a mutation is applied

            def batch(rng: Any, n_rows: int, q: float) -> Any:
                out = orig(rng, n_rows, q)
                self.draws.append(np.asarray(out, dtype=np.int64))
                return out

            self._stack.enter_context(mock.patch.object(owner, "poisson_batch", batch))
        elif self.kind == "subsample":
            owner, _ = resolve_target("tabpriv.backends.slicing.mechanism:draw_sample")
            orig_sample = owner.draw_sample

            def sample(rng: Any, n: int, m: int) -> Any:
                chosen, slots = orig_sample(rng, n, m)
                self.draws.append(np.asarray(chosen, dtype=np.int64))
                return chosen, slots

            self._stack.enter_context(mock.patch.object(owner, "draw_sample", sample))
        else:
            module, leaf = resolve_target("tabpriv.backends.base:FitContext")
            owner = getattr(module, leaf)
            orig_rng = owner.secret_rng  # the mutated one when a mutation is applied
            recorder = self

            class _Tap:
                def __init__(self, rng: Any) -> None:
                    self._rng = rng

                def integers(self, *args: Any, **kwargs: Any) -> Any:
                    v = self._rng.integers(*args, **kwargs)
                    recorder.draws.append(np.atleast_1d(np.asarray(v, dtype=np.int64)))
                    return v

                def __getattr__(self, name: str) -> Any:
                    return getattr(self._rng, name)

            def secret_rng(ctx: Any, purpose: str) -> Any:
                rng = orig_rng(ctx, purpose)
                return _Tap(rng) if purpose == "dp2vae-subset-choice" else rng

            self._stack.enter_context(mock.patch.object(owner, "secret_rng", secret_rng))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()


def _counts(draws: list[np.ndarray], n_cells: int) -> np.ndarray:
    c = np.zeros(n_cells, dtype=np.int64)
    for d in draws:
        np.add.at(c, d, 1)
    return c


def sampler_audit(
    backend: str,
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    alpha: float = ALPHA,
    n_mc: int = 20_000,
) -> ParametricResult:
    """Dispersion test of the secret sampler's appearance counts against the claimed sampler.

    ``dpsgd-vae``/``lipschitz-vae``: ``n = 8`` rows, ``q = 0.25``, ``T = 16`` (as the non-parametric
    sampler audit); statistic: the variance of each row's count of appearances over ``T`` steps,
    pooled over rows and fits; claimed law: independent ``Binomial(T, q)``. ``dp2-vae``: ``K = 100``
    subsets, ``T = 20`` steps; statistic: the number of repeated subsets per fit; claimed law: ``T``
    independent uniform choices. The null distribution of the statistic is simulated (public
    randomness, seeded); only the ``D`` fits are needed.
    """
    if backend in ("dpsgd-vae", "lipschitz-vae"):
        n_rows, kind = 8, "poisson"
        params: dict[str, Any] = {"epochs": 4, "batch_size": 2, "hidden": 8, "latent_dim": 2}
        params.update({"clip": 1e-3} if backend == "dpsgd-vae" else
                      {"mode": "dp", "release": "prior", "max_grad_norm": 1e-3})  # fmt: skip
        memo: tuple[str, ...] = ("tabpriv.backends.vae.dpsgd_loop:calibrate_noise_multiplier",)
    elif backend == "dp2-vae":
        n_rows, kind = 100, "choice"
        params = {"n_subsets": 100, "steps": 20, "pretrain_steps": 2, "batch_size": 1, "hidden": 8,
                  "latent_dim": 2, "clip": 1e-3}  # fmt: skip
        memo = (
            "tabpriv.backends.vae.dp2:calibrate_dp2vae",
            "tabpriv.backends.vae.dp2:dp2vae_epsilon_curve",
            "tabpriv.backends.vae.dp2:dp2vae_epsilon",
        )
    elif backend == "slicing":
        n_rows, kind = 100, "subsample"
        params = {"n_slices": 4, "k": 2, "subsample": 0.1}
        memo = ("tabpriv.backends.slicing.mechanism:calibrate_sigma",)
    else:
        from tabpriv.errors import UnknownBackendError

        raise UnknownBackendError(
            f"No sampler audit for backend {backend!r}; available: dpsgd-vae, lipschitz-vae, dp2-vae, "
            "slicing."
        )
    scenario = mixed_scenario(n_rows)
    t0 = time.perf_counter()
    facts: dict[str, Any] = {}

    def score(synth: Synthesizer, rec: _SamplerRecorder) -> Any:
        nonlocal facts
        facts = dict(synth.ledger_.spends[-1].parameters)
        if kind == "subsample":  # the indicator of each row in this fit's sample (pooled below)
            return np.isin(np.arange(n_rows), np.concatenate(rec.draws)).astype(np.float64)
        if kind == "poisson":
            c = _counts(rec.draws, n_rows)
            return float(np.var(c))
        c = _counts(rec.draws, int(params["n_subsets"]))
        return float(np.sum(c * (c - 1) // 2))  # pairs of steps on the same subset

    if kind == "subsample":
        from tabpriv.audit.targets import _skip_generator_training

        wrap: contextlib.AbstractContextManager[Any] = _skip_generator_training()  # post-processing
    else:
        wrap = contextlib.nullcontext()
    with wrap:
        s_d, _, claimed, _ = run_trials(
            backend=backend, scenario=scenario, params=params, epsilon=epsilon, delta=delta, trials=trials,
            seed=seed, score=score, recorder=lambda: _SamplerRecorder(kind), mutation=mutation, memoise=memo,
        )  # fmt: skip
    rng = np.random.default_rng(12345)  # public: the null law of the statistic
    if kind == "subsample":
        # each row's number of fits (out of ``trials``) in which it was sampled; claimed: uniform samples
        m = int(s_d[0].sum())  # the sample size the backend drew (public: a function of n)
        observed = float(np.var(s_d.sum(axis=0)))
        n_mc = min(n_mc, 5000)
        sims = np.empty(n_mc)
        for i in range(n_mc):
            picks = np.argsort(rng.random((trials, n_rows)), axis=1)[:, :m]
            sims[i] = np.var(np.bincount(picks.reshape(-1), minlength=n_rows))
        expected = trials * (m / n_rows) * (1 - m / n_rows)
        setting = f"n={n_rows}, subsample {params['subsample']}"
        stat_name = "variance over rows of the count of fits sampling the row"
    elif kind == "poisson":
        observed = float(np.mean(s_d[:, 0]))
        steps, q = int(facts["steps"]), float(facts.get("sampling_probability", facts.get("sample_rate", 0)))
        sims = rng.binomial(steps, q, size=(n_mc, trials, n_rows)).var(axis=2).mean(axis=1)
        expected = steps * q * (1 - q) * (n_rows - 1) / n_rows
        setting = f"n={n_rows}, q={q}, T={steps}"
        stat_name = "per-row count variance"
    else:
        observed = float(np.mean(s_d[:, 0]))
        steps, k_sub = int(params["steps"]), int(params["n_subsets"])
        picks = rng.integers(k_sub, size=(n_mc, trials, steps))
        srt = np.sort(picks, axis=2)
        # pairs on the same subset = sum over runs of equal values of C(len, 2); count via equal neighbours
        sims = _pairs(srt).mean(axis=1)
        expected = steps * (steps - 1) / (2 * k_sub)
        setting = f"K={k_sub}, T={steps}"
        stat_name = "repeated subsets per fit"
    p_low = (1 + np.sum(sims <= observed)) / (n_mc + 1)
    p_high = (1 + np.sum(sims >= observed)) / (n_mc + 1)
    p = float(min(1.0, 2 * min(p_low, p_high)))
    lo, hi = (float(v) for v in np.quantile(sims, [alpha, 1 - alpha]))
    return ParametricResult(
        backend=backend,
        test="sampler dispersion (white-box appearance counts vs the claimed sampler's law)",
        mutation=None if mutation is None else mutation.name,
        trials=trials,
        claimed_epsilon=float(claimed),
        delta=delta,
        claimed_mu=expected,
        mu_hat=observed,
        mu_low=lo,
        mu_high=hi,
        ratio=observed / expected,
        ratio_low=lo / expected,
        ratio_high=hi / expected,
        statistic=stat_name,
        flagged=p < alpha,
        over_noised=False,
        normality_p=None,
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        parameters={"setting": setting, "backend_params": params, "p_value": p, "null_draws": n_mc},
    )


def _pairs(srt: np.ndarray) -> np.ndarray:
    """Per row of the last axis (sorted): the number of unordered pairs of equal entries."""
    eq = srt[..., 1:] == srt[..., :-1]
    # a run of length L has L - 1 equal neighbours and C(L, 2) pairs: accumulate run lengths
    out = np.zeros(srt.shape[:-1], dtype=np.int64)
    run = np.zeros(srt.shape[:-1], dtype=np.int64)
    for i in range(eq.shape[-1]):
        run = np.where(eq[..., i], run + 1, 0)
        out += run
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The results file as a Markdown table (backend x mutation -> flagged, estimate CI vs claim)."""
    out = [
        "# Parametric audit (implementation vs claimed noise; generated from audit_parametric.json)",
        "",
        f"{CAVEAT} Flag: the lower confidence bound of mu_true / mu_claim above 1 (level 1 - alpha, "
        "alpha = 0.001 split over the statistics of a run). Sampler rows: the mean of the dispersion "
        "statistic vs its law under the claimed sampler (interval: its central 1 - 2 alpha range).",
        "",
        "| backend | setting | mutation | test | statistic | claimed ε | claimed μ (or statistic) | "
        "estimate [CI] | flagged | normality p (D side) | trials per dataset | seconds |",
        "|---|---|---|---|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        test = "sampler" if r["test"].startswith("sampler") else "mean shift"
        norm = "–" if r["normality_p"] is None else f"{r['normality_p']:.2g}"
        flag = "**yes**" if r["flagged"] else "no"
        if r.get("over_noised"):
            flag += " (over-noised)"
        out.append(
            f"| {r['backend']} | {r['parameters'].get('setting', '')} "
            f"| {r['mutation'] or 'none (shipped code)'} "
            f"| {test} | {r['statistic']} | {r['claimed_epsilon']:.3g} | {r['claimed_mu']:.3g} "
            f"| {r['mu_hat']:.3g} [{r['mu_low']:.3g}, {r['mu_high']:.3g}] | {flag} | {norm} "
            f"| {r['trials']:,} | {r['seconds']:.0f} |"
        )
    out += ["", "Commands (each appends one row to the JSON file; OMP_NUM_THREADS=1, one torch thread):", ""]
    out += [f"    {r['command']}" for r in rows if r.get("command")]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m tabpriv.audit.parametric``: one audit, a JSON record, a one-line summary on stdout."""
    import sys

    from tabpriv.audit.targets import get_mutation

    ap = argparse.ArgumentParser(prog="python -m tabpriv.audit.parametric", description=CAVEAT)
    ap.add_argument("--backend")
    ap.add_argument("--markdown", default=None, help="render the --json results file to this Markdown file")
    ap.add_argument("--mutation", default=None)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--epsilon", type=float, default=2.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10, help="DP-SGD epochs = steps T (q = 1); dp2-vae: T")
    ap.add_argument("--test", choices=["shift", "sampler"], default=None,
                    help="default: sampler for sampler-shuffle, shift otherwise")  # fmt: skip
    ap.add_argument("--json", default=None, help="append the result to this JSON list file")
    args = ap.parse_args(argv)
    if args.markdown:
        from pathlib import Path

        Path(args.markdown).write_text(markdown_table(json.loads(Path(args.json).read_text())))
        return 0
    if not args.backend:
        ap.error("--backend is required (or --markdown with --json)")
    mutation = get_mutation(args.backend, args.mutation)
    test = args.test or ("sampler" if args.mutation in ("sampler-shuffle", "sampler-first-rows") else "shift")
    if test == "sampler":
        res = sampler_audit(args.backend, args.trials, args.epsilon, args.delta, args.seed, mutation)
    else:
        res = parametric_audit(
            args.backend, args.trials, args.epsilon, args.delta, args.seed, mutation, epochs=args.epochs
        )
    d = res.to_dict()
    d["command"] = "python -m tabpriv.audit.parametric " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        from pathlib import Path

        path = Path(args.json)
        rows = json.loads(path.read_text()) if path.exists() else []
        rows.append(d)
        path.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    sys.stdout.write(
        f"{res.backend} {res.mutation or 'shipped'}: flagged={res.flagged} statistic={res.statistic} "
        f"estimate={res.mu_hat:.3g} CI=[{res.mu_low:.3g}, {res.mu_high:.3g}] claim={res.claimed_mu:.3g} "
        f"trials={res.trials} {res.seconds:.0f}s normality_p={res.normality_p}\n{CAVEAT}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
