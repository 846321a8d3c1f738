"""The end-to-end audit of each backend: its scenario, its adversary's score and its mutations.

See :mod:`tabpriv.audit.e2e` for the method. Every audit here fits the shipped backend through
:class:`tabpriv.Synthesizer` on raw DataFrames; the registry :data:`MUTATIONS` names, per backend, the
deliberately broken variants its audit is measured against (docs/assurance.md, section 1).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.audit.e2e import AuditResult, Scenario, finish, mixed_scenario, run_trials
from tabpriv.audit.mutations import Mutation, raising, scale_result_attr, scale_return

if TYPE_CHECKING:
    from tabpriv import Synthesizer

__all__ = ["E2E_AUDITS", "MUTATIONS", "audit_independent", "audit_slicing", "get_mutation"]

_IND = "tabpriv.backends.independent"
_SLI = "tabpriv.backends.slicing.mechanism"


def _zero_first(n_zero: int, axis: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make``: the noise function's output with its first ``n_zero`` entries (along ``axis``) zeroed."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = np.array(original(*args, **kwargs), copy=True)
            index = [slice(None)] * out.ndim
            index[axis] = slice(0, n_zero)
            out[tuple(index)] = 0
            return out

        return wrapper

    return make


# -- independent ------------------------------------------------------------------------------------
def _independent_direction(scenario: Scenario, bins: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``counts(D)`` and ``counts(D') - counts(D)`` of every histogram, concatenated (auditor knows D)."""
    from tabpriv.backends.independent import _bin_codes, histogram_layout
    from tabpriv.transformers import TableTransformer

    tt = TableTransformer(scenario.schema).fit()
    out = []
    for df in (scenario.d, scenario.d_prime):
        clean, _ = scenario.schema.validate(df, clip=True)
        table = tt.transform(clean)
        counts = []
        for span in table.spans:
            n_bins, has_missing = histogram_layout(span, bins)
            # The backend's own binning: a missing number goes to the trailing "missing" bin.
            codes = _bin_codes(table.data[:, span.slice], span, n_bins, has_missing)
            counts.append(np.bincount(codes, minlength=n_bins + int(has_missing)))
        out.append(np.concatenate(counts).astype(np.float64))
    return out[0], out[1] - out[0], [len(c) for c in counts]


def _released_counts(synth: Synthesizer) -> np.ndarray:
    arrays, meta = synth.backend_.get_state()
    return np.concatenate(
        [np.asarray(arrays[f"counts_{i}"], dtype=np.float64) for i in range(int(meta["n_columns"]))]
    )


def audit_independent(
    trials: int,
    epsilon: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
) -> AuditResult:
    """End-to-end audit of ``independent`` (noisy one-way histograms).

    ``D``: ``n_rows`` raw rows (two categorical columns at ``"a"``, one continuous column at 0 on
    ``[0, 1]``). ``D'``: row 0 replaced by ``("b", "b", 1e6)``, clipped by the schema to 1: every
    histogram moves one count (L2 change ``sqrt(2c)``, the backend's sensitivity). Statistics: the
    likelihood-ratio statistic of a Gaussian, ``<noisy - counts(D), counts(D') - counts(D)>``, and the
    same restricted to each histogram (the selection half picks one).
    """
    scenario = mixed_scenario(n_rows)
    bins = 32
    base, direction, sizes = _independent_direction(scenario, bins)
    cuts = np.cumsum(sizes)[:-1]

    def score(synth: Synthesizer, _: Any) -> np.ndarray:
        prod = (_released_counts(synth) - base) * direction
        return np.array([prod.sum(), *(p.sum() for p in np.split(prod, cuts))])

    t0 = time.perf_counter()
    s_d, s_p, claimed, facts = run_trials(
        backend="independent",
        scenario=scenario,
        params={"bins": bins},
        epsilon=epsilon,
        delta=delta,
        trials=trials,
        seed=seed,
        score=score,
        mutation=mutation,
        memoise=(f"{_IND}:noise_calibration",),
    )
    return finish(
        s_d,
        s_p,
        started=t0,
        delta=delta,
        backend="independent",
        step="Synthesizer.fit end to end (schema, transformer, histograms, discrete Gaussian noise)",
        adjacency="replace-one (raw row 0 replaced by a canary: other category everywhere, 1e6 clipped to 1)",
        trials=trials,
        claimed_epsilon=claimed,
        mutation=None if mutation is None else mutation.name,
        parameters={"n_rows": n_rows, "target_epsilon": epsilon, **_jsonable(facts)},
    )


# -- slicing ----------------------------------------------------------------------------------------
def _slicing_no_training(
    self: Any, release: Any, cfg: Any, device: str, seed: int, context: Any = None
) -> None:
    """Stand-in for the generator training (post-processing of the release): keep the release only."""
    self.release_ = release
    self.weights_ = {}
    self.loss_history_ = []
    self.device_ = device
    self.spans_ = release.spans


@contextlib.contextmanager
def _skip_generator_training() -> Iterator[None]:
    from unittest import mock

    from tabpriv.backends.slicing.backend import SlicingBackend

    with mock.patch.object(SlicingBackend, "_train", _slicing_no_training):
        yield


def audit_slicing(
    trials: int,
    epsilon: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 20,
    n_slices: int = 4,
    k: int = 2,
    subsample: float | None = None,
) -> AuditResult:
    """End-to-end audit of ``slicing`` (the release ``(U, XU + V)``).

    Same raw tables as the ``independent`` audit (encoded width d = 5; ``||x - x'||^2 = 2 + 2 + 4`` =
    the block sensitivity squared). The generator training is skipped: it is post-processing of the
    release, which is all the adversary reads. Score: the exact log-likelihood ratio of ``D'`` vs
    ``D`` given the public ``U``: for released row ``i``, ``l_i = (<y_i - xU, a> - |a|^2 / 2) / sigma^2``
    with ``a = (x' - x) U``; without subsampling the canary is row 0 (score ``l_0``); with subsampling
    its slot is secret and the score is ``log mean_i exp(l_i)`` (the exact ratio for that mixture), or
    ``max_i l_i``.
    Without subsampling each projected coordinate of row 0 (signed by ``a``) is a candidate statistic
    too (the selection half picks one).
    """
    from tabpriv.backends.slicing.mechanism import enforce_blocks

    scenario = mixed_scenario(n_rows)
    x_d, x_p = scenario.encoded("d"), scenario.encoded("p")
    spans = _spans(scenario)
    x = enforce_blocks(x_d[:1], spans)[0].astype(np.float64)
    xp = enforce_blocks(x_p[:1], spans)[0].astype(np.float64)

    def score(synth: Synthesizer, _: Any) -> np.ndarray:
        rel = synth.backend_.release_  # type: ignore[attr-defined]
        u = np.asarray(rel.projection, dtype=np.float64)
        y = np.asarray(rel.noisy, dtype=np.float64)
        a = (xp - x) @ u
        s2 = float(rel.sigma) ** 2
        if subsample is None:
            r = y[0] - x @ u
            return np.array([float((r @ a - 0.5 * (a @ a)) / s2), *(r * np.sign(a))])
        ll = ((y - x @ u) @ a - 0.5 * (a @ a)) / s2
        m = float(ll.max())
        return np.array([m + math.log(float(np.mean(np.exp(ll - m)))), m])

    params: dict[str, Any] = {"n_slices": n_slices, "k": k}
    if subsample is not None:
        params["subsample"] = subsample
    t0 = time.perf_counter()
    with _skip_generator_training():
        s_d, s_p, claimed, facts = run_trials(
            backend="slicing",
            scenario=scenario,
            params=params,
            epsilon=epsilon,
            delta=delta,
            trials=trials,
            seed=seed,
            score=score,
            mutation=mutation,
            memoise=(f"{_SLI}:calibrate_sigma",),
        )
    return finish(
        s_d,
        s_p,
        started=t0,
        delta=delta,
        backend="slicing",
        step="Synthesizer.fit end to end up to the release (schema, transformer, block enforcement, "
        "U, secret noise and sample); generator training (post-processing) skipped",
        adjacency="replace-one (raw row 0 replaced by a canary: other category everywhere, 1e6 clipped to 1)",
        trials=trials,
        claimed_epsilon=claimed,
        mutation=None if mutation is None else mutation.name,
        parameters={"n_rows": n_rows, "target_epsilon": epsilon, **_jsonable(facts)},
    )


def _spans(scenario: Scenario) -> Any:
    from tabpriv.transformers import TableTransformer

    clean, _ = scenario.schema.validate(scenario.d, clip=True)
    return TableTransformer(scenario.schema).fit().transform(clean).spans


def _jsonable(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if isinstance(v, int | float | str | bool) or v is None}


# -- mutations --------------------------------------------------------------------------------------
def _common(
    backend: str, noise: tuple[str, Callable[[float], Callable[[Any], Any]]], sensitivity: Mutation
) -> dict[str, Mutation]:
    target, make = noise
    return {
        "noise-x0.5": Mutation("noise-x0.5", "noise scale halved, claim unchanged", target, make(0.5)),
        "noise-x0.25": Mutation("noise-x0.25", "noise scale quartered, claim unchanged", target, make(0.25)),
        "sensitivity-x2": sensitivity,
    }


MUTATIONS: dict[str, dict[str, Mutation]] = {
    "independent": {
        **_common(
            "independent",
            (f"{_IND}:noise_calibration", lambda f: scale_result_attr("sigma", f)),
            Mutation(
                "sensitivity-x2",
                "the calibration is told half the true L2 sensitivity sqrt(2c)",
                f"{_IND}:l2_sensitivity",
                scale_return(0.5),
            ),
        ),
        "unnoised-step": Mutation(
            "unnoised-step",
            "the first histogram (2 cells) released without noise",
            f"{_IND}:draw_noise",
            _zero_first(2, 0),
        ),
        "loop-raises": Mutation(
            "loop-raises",
            "the histogram pass replaced by a function that raises: the audit must error",
            f"{_IND}:_true_histograms",
            raising("histogram pass replaced (audit self-test)"),
            expected="error",
        ),
    },
    "slicing": {
        **_common(
            "slicing",
            (f"{_SLI}:calibrate_sigma", lambda f: scale_result_attr("sigma", f)),
            Mutation(
                "sensitivity-x2",
                "the calibration is told half the block sensitivity",
                f"{_SLI}:block_sensitivity",
                scale_return(0.5),
            ),
        ),
        "unnoised-step": Mutation(
            "unnoised-step",
            "one projection (column 0 of V) released without noise",
            f"{_SLI}:draw_noise",
            _zero_first(1, 1),
        ),
        "sampler-first-rows": Mutation(
            "sampler-first-rows",
            "the secret uniform subsample (subsample < 1) swapped for the first rows of the table in "
            "a shuffled order; the accountant still amplifies by sampling without replacement",
            f"{_SLI}:draw_sample",
            lambda orig: lambda rng, n, m: (np.arange(m, dtype=np.int64), rng.permutation(m)),
        ),
        "block-clipping-off": Mutation(
            "block-clipping-off",
            "block enforcement disabled (identity): undetectable end to end, since rows from the "
            "schema transformers already lie in the bounded sets (enforcement is defence in depth)",
            f"{_SLI}:enforce_blocks",
            lambda orig: lambda data, spans: np.array(data, dtype=np.float32, copy=True),
            expected="undetectable",
        ),
        "loop-raises": Mutation(
            "loop-raises",
            "the privatising pass replaced by a function that raises: the audit must error",
            f"{_SLI}:privatise",
            raising("privatise replaced (audit self-test)"),
            expected="error",
        ),
    },
}


def get_mutation(backend: str, name: str | None) -> Mutation | None:
    """The mutation ``name`` of ``backend`` (``None`` for the shipped code).

    Raises:
        UnknownBackendError: No such mutation for that backend.

    """
    from tabpriv.errors import UnknownBackendError

    if name is None:
        return None
    table = MUTATIONS.get(backend, {})
    if name not in table:
        raise UnknownBackendError(
            f"No mutation {name!r} for backend {backend!r}; available: {', '.join(sorted(table)) or 'none'}."
        )
    return table[name]


E2E_AUDITS: dict[str, Callable[..., AuditResult]] = {
    "independent": audit_independent,
    "slicing": audit_slicing,
}


# -- DP-SGD-style training (dpsgd-vae, lipschitz-vae dp mode, dp2-vae) -------------------------------
_DPSGD = "tabpriv.backends.vae.dpsgd_loop"
_DP2 = "tabpriv.backends.vae.dp2_torch"


class StepRecorder:
    """White-box view of a DP-SGD run: every noisy gradient and the parameters it was computed at.

    Entered around one fit. It wraps the training loop's seams (looked up at call time by the
    backends) without changing what they compute:

    * ``dpsgd``: :func:`tabpriv.backends.vae.dpsgd_loop.run_dpsgd` (to keep the module, the per-record loss
      and the clipping norm) and :func:`~tabpriv.backends.vae.dpsgd_loop.noisy_gradient_` (after it runs,
      ``p.grad`` is the released noisy update ``(sum of clipped gradients + noise) / b``);
    * ``dp2``: :func:`tabpriv.backends.vae.dp2_torch.gradient_noise`, called once per decoder step
      with the decoder's parameters; the noisy update of step ``t`` is read from ``p.grad`` at the
      call of step ``t + 1`` (and after the fit for the last step).

    DP-SGD's guarantee covers the release of every iterate, so this adversary is within the claim.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.thetas: list[list[Any]] = []
        self.grads: list[list[Any]] = []
        self.params: list[Any] | None = None
        self.module: Any = None
        self.per_record_loss: Any = None
        self.clip: float | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> StepRecorder:
        from unittest import mock

        from tabpriv.audit.mutations import resolve_target

        if self.kind == "dpsgd":
            owner, _ = resolve_target(f"{_DPSGD}:run_dpsgd")
            run_orig, noisy_orig = owner.run_dpsgd, owner.noisy_gradient_

            def run(module: Any, optimizer: Any, per_record_loss: Any, *args: Any, **kwargs: Any) -> Any:
                self.module, self.per_record_loss, self.clip = module, per_record_loss, float(kwargs["clip"])
                return run_orig(module, optimizer, per_record_loss, *args, **kwargs)

            def noisy(params: Any, *args: Any, **kwargs: Any) -> Any:
                theta = [p.detach().clone() for p in params]
                out = noisy_orig(params, *args, **kwargs)
                self.params = list(params)
                self.thetas.append(theta)
                self.grads.append([p.grad.detach().clone() for p in params])
                return out

            self._stack.enter_context(mock.patch.object(owner, "run_dpsgd", run))
            self._stack.enter_context(mock.patch.object(owner, "noisy_gradient_", noisy))
        else:
            owner, _ = resolve_target(f"{_DP2}:gradient_noise")
            noise_orig = owner.gradient_noise

            def noise(rng: Any, params: Any, std: float, device: Any) -> Any:
                if self.params is not None:
                    self.grads.append([p.grad.detach().clone() for p in self.params])
                self.params = list(params)
                self.thetas.append([p.detach().clone() for p in params])
                return noise_orig(rng, params, std, device)

            self._stack.enter_context(mock.patch.object(owner, "gradient_noise", noise))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
        if self.kind == "dp2" and self.params is not None and len(self.grads) < len(self.thetas):
            self.grads.append([p.grad.detach().clone() for p in self.params])

    @property
    def steps(self) -> int:
        """Noisy steps recorded."""
        return len(self.grads)


def check_steps(rec: StepRecorder, expected_steps: int) -> None:
    """Raise unless the recorder saw exactly the accounted number of noisy steps.

    Raises:
        AuditError: The real training loop did not run as accounted (nothing would be audited).

    """
    from tabpriv.errors import AuditError

    if rec.steps != expected_steps or rec.params is None:
        raise AuditError(
            f"The audit recorded {rec.steps} noisy training steps but the ledger accounts "
            f"{expected_steps}; the real training loop did not run as accounted, so nothing was audited."
        )


def _flat(tensors: list[Any]) -> Any:
    import torch

    return torch.cat([t.reshape(-1) for t in tensors])


def _clipped(grads: list[Any], clip: float) -> Any:
    g = _flat(grads)
    return g * min(1.0, clip / (float(g.norm()) + 1e-6))


def _step_statistics(
    rec: StepRecorder,
    grad_of: Callable[[int, Any], Any],
    rows: tuple[Any, Any],
    clip: float,
    expected_steps: int,
) -> np.ndarray:
    """Candidate statistics ``[sum_t s_t, max_t s_t, output-bias sum, output-bias max, s_0, s_1, ...]``.

    ``s_t = <G_t, g_c(theta_t) - g_x(theta_t)>`` with the clipped per-record gradients of the canary and
    of the row it replaces at the recorded parameters.
    """
    check_steps(rec, expected_steps)
    x, xp = rows
    s = np.empty(rec.steps)
    bias = np.empty(rec.steps)
    v = _output_bias_direction(x, xp, rec)
    for t in range(rec.steps):
        diff = _clipped(grad_of(t, xp), clip) - _clipped(grad_of(t, x), clip)
        s[t] = float(_flat(rec.grads[t]) @ diff)
        bias[t] = float(rec.grads[t][-1].reshape(-1) @ v)
    per_step = list(s) if rec.steps <= 64 else []
    return np.array([s.sum(), s.max(), bias.sum(), bias.max(), *per_step])


def _output_bias_direction(x: Any, xp: Any, rec: StepRecorder) -> Any:
    """``x - x'`` on the categorical coordinates, laid on the decoder's output bias.

    The output bias is the last trained parameter; its first ``d`` entries mirror the encoded row. The
    canary's gradient there is ``p - x'``, whose projection ``p_a - p_b + 1 >= 0`` per categorical
    column whatever the model.
    """
    import torch

    assert rec.params is not None
    d = int(x.shape[1])
    out = torch.zeros(int(rec.params[-1].numel()), dtype=x.dtype)
    if out.numel() >= d:
        diff = (x - xp)[0]
        mask = (x[0] + xp[0] == 1) & ((x[0] == 1) | (xp[0] == 1))  # one-hot coordinates that differ
        out[:d] = torch.where(mask, diff, torch.zeros_like(diff))
    return out


#: Draws of the reparameterisation noise the auditor averages the canary's gradient over.
_EPS_DRAWS = 16


def _dpsgd_grad_of(rec: StepRecorder) -> Callable[[int, Any], Any]:
    """Per-record gradient of the backend's own loss at the recorded parameters of step ``t``."""
    import torch

    assert rec.params is not None

    def grad_of(t: int, row: Any) -> list[Any]:
        assert rec.params is not None
        with torch.no_grad():
            for p, v in zip(rec.params, rec.thetas[t], strict=True):
                p.copy_(v)
        # the mean over draws of the backend's reparameterisation noise: the expected gradient
        loss = rec.per_record_loss(row.repeat(_EPS_DRAWS, 1)).mean()
        return list(torch.autograd.grad(loss, rec.params, allow_unused=True))

    return grad_of


def _dp2_grad_of(rec: StepRecorder, synth: Synthesizer) -> Callable[[int, Any], Any]:
    """Decoder gradient of a row's reconstruction loss at ``z = 0``.

    The auditor does not know the frozen posterior of the canary's subset, so it uses the prior mean.
    """
    import torch
    from torch.func import functional_call

    from tabpriv.backends.vae.common import MLP, SpanLayout, decoder_sizes, recon_loss

    b: Any = synth.backend_
    layout = SpanLayout.from_spans(b.spans_, b.condition_column_, b.numeric_bins, b.integer_levels_)
    dec = MLP(decoder_sizes(layout.out_width, b.hidden, b.latent_dim, layout.cond_width))
    names = [n for n, _ in dec.named_parameters()]

    def grad_of(t: int, row: Any) -> list[Any]:
        theta = {
            n: v.detach().clone().requires_grad_(True) for n, v in zip(names, rec.thetas[t], strict=True)
        }
        z = torch.zeros((1, b.latent_dim), dtype=row.dtype)
        logits = functional_call(dec, theta, (torch.cat([z, layout.condition(row)], dim=-1),))
        loss = recon_loss(logits, row, layout).mean()
        return list(torch.autograd.grad(loss, list(theta.values())))

    return grad_of


def _gradient_audit(
    backend: str,
    kind: str,
    params: dict[str, Any],
    trials: int,
    epsilon: float,
    delta: float,
    seed: int | None,
    mutation: Mutation | None,
    n_rows: int,
    memoise: tuple[str, ...],
    step_text: str,
) -> AuditResult:
    import torch

    torch.set_num_threads(1)
    scenario = mixed_scenario(n_rows)
    x = torch.as_tensor(scenario.encoded("d")[:1], dtype=torch.float32)
    xp = torch.as_tensor(scenario.encoded("p")[:1], dtype=torch.float32)

    def score(synth: Synthesizer, rec: StepRecorder) -> np.ndarray:
        spend = synth.ledger_.spends[-1].parameters
        steps = int(spend.get("steps", -1))
        clip = float(spend.get("clip_norm", spend.get("max_grad_norm", 1.0)))
        check_steps(rec, steps)
        grad_of = _dpsgd_grad_of(rec) if kind == "dpsgd" else _dp2_grad_of(rec, synth)
        return _step_statistics(rec, grad_of, (x, xp), clip, steps)

    t0 = time.perf_counter()
    s_d, s_p, claimed, facts = run_trials(
        backend=backend,
        scenario=scenario,
        params=params,
        epsilon=epsilon,
        delta=delta,
        trials=trials,
        seed=seed,
        score=score,
        recorder=lambda: StepRecorder(kind),
        mutation=mutation,
        memoise=memoise,
    )
    names = ["sum over steps", "max over steps", "output-bias sum", "output-bias max"]
    names += [f"step {t}" for t in range(s_d.shape[1] - len(names))]
    return finish(
        s_d,
        s_p,
        started=t0,
        delta=delta,
        statistic_names=names,
        backend=backend,
        step=step_text,
        adjacency="replace-one (raw row 0 replaced by a canary: other category everywhere, 1e6 clipped to 1)",
        trials=trials,
        claimed_epsilon=claimed,
        mutation=None if mutation is None else mutation.name,
        parameters={
            "n_rows": n_rows,
            "target_epsilon": epsilon,
            "backend_params": params,
            **_jsonable(facts),
        },
    )


def audit_dpsgd_vae(
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 4,
    epochs: int = 10,
    batch_size: int = 4,
    clip: float = 1e-3,
) -> AuditResult:
    """End-to-end audit of ``dpsgd-vae``: the real DP-SGD loop, its Poisson sampler, q and T.

    ``n_rows`` raw rows, ``q = batch_size / n_rows``, ``T = epochs * ceil(n / batch_size)``. The
    adversary sees every noisy update ``G_t`` and the parameters ``theta_t`` (white-box) and scores
    ``s_t = <G_t, g_c(theta_t) - g_x(theta_t)>`` with the clipped per-record gradients of the canary
    and of the row it replaces under the backend's own loss (one draw of its reparameterisation noise);
    candidates: the sum and the max over steps and each step (the selection half picks one).
    """
    params = {"epochs": epochs, "batch_size": batch_size, "hidden": 8, "latent_dim": 2, "clip": clip}
    return _gradient_audit(
        "dpsgd-vae", "dpsgd", params, trials, epsilon, delta, seed, mutation, n_rows,
        (f"{_DPSGD}:calibrate_noise_multiplier",),
        "Synthesizer.fit end to end (schema, transformer, dpsgd_loop.run_dpsgd: secret Poisson sampler, "
        "per-record clipping, secret Gaussian noise, exactly T steps); every noisy update recorded",
    )  # fmt: skip


def audit_lipschitz_vae(
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 4,
    epochs: int = 10,
    batch_size: int = 4,
    clip: float = 1e-3,
) -> AuditResult:
    """End-to-end audit of ``lipschitz-vae`` in DP mode (``release="prior"``): as :func:`audit_dpsgd_vae`."""
    params = {
        "mode": "dp",
        "release": "prior",
        "epochs": epochs,
        "batch_size": batch_size,
        "hidden": 8,
        "latent_dim": 2,
        "max_grad_norm": clip,
    }
    return _gradient_audit(
        "lipschitz-vae", "dpsgd", params, trials, epsilon, delta, seed, mutation, n_rows,
        (f"{_DPSGD}:calibrate_noise_multiplier",),
        "Synthesizer.fit end to end, DP mode (schema, transformer, row clipping, dpsgd_loop.run_dpsgd with "
        "the spectral projection after each step); every noisy update recorded",
    )  # fmt: skip


def audit_dp2vae(
    trials: int,
    epsilon: float = 2.0,
    delta: float = 1e-5,
    seed: int | None = 0,
    mutation: Mutation | None = None,
    n_rows: int = 100,
    n_subsets: int = 100,
    steps: int = 20,
    clip: float = 1e-3,
) -> AuditResult:
    """End-to-end audit of ``dp2-vae`` with its real K and T.

    Stage 1, the secret subset choice, the clipped batch-mean update and its secret noise all run.

    ``n_rows = K`` rows and ``batch_size = 1``, so the canary's subset is the canary alone and each of
    the ``T`` decoder steps uses it with probability ``1/K`` (what the accountant amplifies by). Score
    as :func:`audit_dpsgd_vae`, with the decoder gradient of the reconstruction loss at ``z = 0``.
    """
    params = {
        "n_subsets": n_subsets,
        "steps": steps,
        "pretrain_steps": 2,
        "batch_size": 1,
        "hidden": 8,
        "latent_dim": 2,
        "clip": clip,
    }
    return _gradient_audit(
        "dp2-vae", "dp2", params, trials, epsilon, delta, seed, mutation, n_rows,
        (
            "tabpriv.backends.vae.dp2:calibrate_dp2vae",
            "tabpriv.backends.vae.dp2:dp2vae_epsilon_curve",
            "tabpriv.backends.vae.dp2:dp2vae_epsilon",
        ),
        "Synthesizer.fit end to end (schema, transformer, stage 1 with K encoders, T decoder steps on "
        "1 of K secret subsets, clipping, secret noise); every noisy update recorded",
    )  # fmt: skip


E2E_AUDITS.update(
    {"dpsgd-vae": audit_dpsgd_vae, "lipschitz-vae": audit_lipschitz_vae, "dp2-vae": audit_dp2vae}
)


def _fixed_subset_cycle(original: Callable[..., Any]) -> Callable[..., Any]:
    """``FitContext.secret_rng`` whose subset-choice stream cycles through the K subsets.

    A shuffled order, each subset used once per K steps, instead of a uniform choice at every step.
    """

    class _Cycle:
        def __init__(self, rng: Any) -> None:
            self._rng, self._queue = rng, []  # type: ignore[var-annotated]

        def integers(self, k: int, *args: Any, **kwargs: Any) -> int:
            if not self._queue:
                self._queue = [int(v) for v in self._rng.permutation(int(k))]
            return self._queue.pop(0)

    def secret_rng(self: Any, purpose: str) -> Any:
        rng = original(self, purpose)
        return _Cycle(rng) if purpose == "dp2vae-subset-choice" else rng

    return secret_rng


def _gradient_mutations(
    noise_target: str, std_position: int, extra: dict[str, Mutation]
) -> dict[str, Mutation]:
    from tabpriv.audit.mutations import first_call_unnoised, scale_argument

    return {
        "noise-x0.5": Mutation(
            "noise-x0.5", "gradient noise std halved, claim unchanged", noise_target,
            scale_argument(std_position, "std", 0.5),
        ),
        "noise-x0.25": Mutation(
            "noise-x0.25", "gradient noise std quartered, claim unchanged", noise_target,
            scale_argument(std_position, "std", 0.25),
        ),
        "unnoised-step": Mutation(
            "unnoised-step", "the first training step released without noise", noise_target,
            first_call_unnoised(0),
        ),
        **extra,
    }  # fmt: skip


def _dpsgd_mutations(backend: str) -> dict[str, Mutation]:
    from tabpriv.audit.mutations import scale_argument, shuffled_batches

    loop = (
        "tabpriv.backends.vae.dpsgd_torch:train_dpsgd_vae"
        if backend == "dpsgd-vae"
        else "tabpriv.backends.vae.lipschitz_torch:train"
    )
    return _gradient_mutations(
        f"{_DPSGD}:gaussian_noise",
        2,
        {
            "sensitivity-x2": Mutation(
                "sensitivity-x2",
                "per-record clipping at 2C while the noise (z C) and the accountant assume C",
                f"{_DPSGD}:clip_and_sum",
                scale_argument(1, "clip", 2.0),
            ),
            "sampler-shuffle": Mutation(
                "sampler-shuffle",
                "Poisson sampler swapped for shuffling (fixed-size batches of a random permutation "
                "per epoch); the accountant still assumes Poisson sampling",
                f"{_DPSGD}:poisson_batch",
                shuffled_batches(),
            ),
            "loop-raises": Mutation(
                "loop-raises",
                "the training function replaced by one that raises: the audit must error",
                loop,
                raising("training loop replaced (audit self-test)"),
                expected="error",
            ),
            "loop-skipped": Mutation(
                "loop-skipped",
                "run_dpsgd replaced by a function that trains nothing but returns T: the audit must "
                "error (it records fewer noisy steps than accounted)",
                f"{_DPSGD}:run_dpsgd",
                lambda orig: lambda *a, **k: a[4].steps,
                expected="error",
            ),
        },
    )


MUTATIONS["dpsgd-vae"] = _dpsgd_mutations("dpsgd-vae")
MUTATIONS["lipschitz-vae"] = _dpsgd_mutations("lipschitz-vae")
MUTATIONS["dp2-vae"] = _gradient_mutations(
    f"{_DP2}:gradient_noise",
    2,
    {
        "sensitivity-x2": Mutation(
            "sensitivity-x2",
            "the calibration is told a per-step sensitivity of C instead of 2C",
            "tabpriv.backends.vae.dp2:step_sensitivity",
            scale_return(0.5),
        ),
        "sampler-shuffle": Mutation(
            "sampler-shuffle",
            "the uniform secret choice of 1 of K subsets per step swapped for a shuffled cycle through "
            "the subsets; the accountant still assumes a fresh uniform choice",
            "tabpriv.backends.base:FitContext.secret_rng",
            _fixed_subset_cycle,
        ),
        "loop-raises": Mutation(
            "loop-raises",
            "the training function replaced by one that raises: the audit must error",
            f"{_DP2}:train_dp2vae",
            raising("training loop replaced (audit self-test)"),
            expected="error",
        ),
    },
)


# -- marginal backends (mst, aim): tabpriv/audit/marginal.py ------------------------------------------
def _register_marginal() -> None:
    from tabpriv.audit.marginal import audit_aim, audit_mst, marginal_mutations

    E2E_AUDITS.update({"mst": audit_mst, "aim": audit_aim})
    MUTATIONS["mst"] = marginal_mutations("mst")
    MUTATIONS["aim"] = marginal_mutations("aim")


_register_marginal()
