"""DP-SGD as ``dpsgd-vae`` and ``lipschitz-vae`` run it: schedule, Poisson sampler, noisy step, loop.

The accountant (:func:`tabpriv.accounting.calibrate_dpsgd`, dp-accounting's PLD under replace-one)
accounts ``T = steps`` Poisson-subsampled Gaussian steps at rate ``q``; this module runs exactly that:

* :func:`dpsgd_schedule` fixes ``q = b / n`` (``b = min(batch_size, n)``, ``n`` public under
  replace-one) and ``T = epochs * ceil(n / b)`` from public quantities only;
* :func:`poisson_batch` draws each step's batch from the **secret** ChaCha20 generator: every row is
  in independently with probability ``q``;
* :func:`clip_and_sum` clips every per-record gradient to L2 norm ``C`` over all parameters and sums
  them. By default (``grad_sample_mode="ghost"``) the per-record gradients are never materialised:
  opacus' ``GradSampleModuleFastGradientClipping`` (ghost clipping, Li et al. 2022; Bu et al. 2023)
  computes each record's gradient norm from the layer activations and output gradients in a first
  backward pass, and a second backward pass of ``sum_i c_i loss_i`` with the clip factors
  ``c_i = min(1, C / (norm_i + 1e-6))`` gives the sum of the clipped gradients: the same sum, up to
  float rounding, as ``grad_sample_mode="hooks"`` (opacus' ``GradSampleModule``, which materialises
  ``(batch, *param.shape)`` per-record gradients and was the only mode before);
* :func:`gaussian_noise` draws ``N(0, (z C)^2)`` from the **secret** ChaCha20 generator
  (:func:`tabpriv._random.secret_normal_torch`), never from a torch generator;
* :func:`run_dpsgd` loops exactly ``T`` times (an empty batch still gets its noisy step) and returns
  the number of steps it executed, which the backends store and the tests compare with ``T``.

These five functions are the module-level seams the privacy audits patch (noise scale, sensitivity,
sampler, one un-noised step); every caller looks them up on this module at call time. torch and
opacus are imported inside the functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.accounting import DPSGDCalibration, calibrate_dpsgd
from tabpriv.errors import PrivacyParameterError, TabprivError

if TYPE_CHECKING:
    import torch

__all__ = [
    "GRAD_SAMPLE_MODES",
    "SAMPLER_TEXT",
    "DPSGDSchedule",
    "GhostRecords",
    "calibrate_noise_multiplier",
    "clip_and_sum",
    "dpsgd_schedule",
    "gaussian_noise",
    "noisy_gradient_",
    "poisson_batch",
    "run_dpsgd",
]

#: The sampler, in words (reports).
SAMPLER_TEXT = (
    "Poisson sampling: each row in each step independently with probability q = batch_size / n, "
    "drawn from a secret ChaCha20 stream (batch size ~ Binomial(n, q), then a uniform subset of that size)"
)


#: How per-record gradients are clipped: ``"ghost"`` (norms without per-record gradients; the default)
#: or ``"hooks"`` (materialised per-record gradients, the mode of earlier versions).
GRAD_SAMPLE_MODES = ("ghost", "hooks")


@dataclass(frozen=True)
class GhostRecords:
    """One batch's per-record gradients held implicitly (ghost clipping), for :func:`clip_and_sum`.

    Attributes:
        norms: ``(batch,)`` L2 norm of each record's gradient over all parameters (from the ghost
            norms of every layer, computed in the first backward pass).
        losses: ``(batch,)`` per-record losses, their graph retained: ``grad(sum_i c_i losses_i)``
            is ``sum_i c_i g_i``.
        params: The parameters the gradients are taken with respect to.
        hooks: The opacus module whose hooks are switched off for the second pass (``None``: none).

    """

    norms: torch.Tensor
    losses: torch.Tensor
    params: Sequence[torch.Tensor]
    hooks: Any = None


@dataclass(frozen=True)
class DPSGDSchedule:
    """What DP-SGD runs and the accountant accounts (public quantities only).

    Attributes:
        n_rows: Number of rows (public under replace-one adjacency).
        expected_batch: ``b = min(batch_size, n_rows)``; gradients are divided by it.
        sampling_probability: ``q = b / n_rows``.
        steps: ``T = epochs * ceil(n_rows / b)``.
        steps_per_epoch: ``ceil(n_rows / b)`` (progress reports only).

    """

    n_rows: int
    expected_batch: int
    sampling_probability: float
    steps: int
    steps_per_epoch: int


def dpsgd_schedule(n_rows: int, batch_size: int, epochs: int) -> DPSGDSchedule:
    """Sampling rate and step count of a DP-SGD run (see the module docstring)."""
    for name, v in (("n_rows", n_rows), ("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise PrivacyParameterError(f"{name} must be a positive integer; got {v!r}.")
    b = min(int(batch_size), int(n_rows))
    per_epoch = math.ceil(int(n_rows) / b)
    return DPSGDSchedule(int(n_rows), b, b / int(n_rows), int(epochs) * per_epoch, per_epoch)


def calibrate_noise_multiplier(epsilon: float, delta: float, schedule: DPSGDSchedule) -> DPSGDCalibration:
    """The noise multiplier of ``schedule`` for a replace-one ``(epsilon, delta)`` target (PLD, bisection)."""
    return calibrate_dpsgd(epsilon, delta, schedule.sampling_probability, schedule.steps)


def poisson_batch(rng: np.random.Generator, n_rows: int, q: float) -> np.ndarray:
    """Sorted indices of one Poisson sample: each of ``n_rows`` rows in with probability ``q``.

    Drawn as ``k ~ Binomial(n_rows, q)`` and then a uniform subset of size ``k`` (numpy's
    ``choice(..., replace=False)``): the same distribution as ``n_rows`` independent Bernoulli(q)
    draws, in ``O(k)`` instead of ``O(n_rows)`` per step. ``rng`` must be a secret generator
    (:meth:`FitContext.secret_rng`): the accountant's amplification assumes the batch is secret.
    """
    if q >= 1.0:
        return np.arange(n_rows, dtype=np.int64)
    k = int(rng.binomial(n_rows, q))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(n_rows, size=k, replace=False).astype(np.int64))


def clip_and_sum(grad_samples: Sequence[torch.Tensor] | GhostRecords, clip: float) -> list[torch.Tensor]:
    """Clip each record's gradient (over all parameters together) to L2 norm ``clip``; sum the records.

    ``grad_samples`` is either the materialised per-record gradients (``grad_samples[j]`` has shape
    ``(batch, *param_j.shape)``, hooks mode) or a :class:`GhostRecords` (ghost clipping: the norms, and
    the per-record losses whose weighted sum is differentiated once more). The clip factor is
    ``min(1, clip / (norm + 1e-6))`` (opacus' rule) either way, so every record contributes at most
    ``clip``.
    """
    import torch

    if isinstance(grad_samples, GhostRecords):
        g = grad_samples
        params = list(g.params)
        if int(g.norms.shape[0]) == 0:
            return [torch.zeros_like(p) for p in params]
        factor = (clip / (g.norms + 1e-6)).clamp(max=1.0).detach()
        if g.hooks is not None:
            g.hooks.disable_hooks()  # the second pass needs no norms
        try:
            with warnings.catch_warnings():  # opacus' (switched-off) hooks still fire on the input layer
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                grads = torch.autograd.grad((factor.to(g.losses.dtype) * g.losses).sum(), params)
        finally:
            if g.hooks is not None:
                g.hooks.enable_hooks()
        return [gr.detach() for gr in grads]
    b = int(grad_samples[0].shape[0])
    if b == 0:
        return [torch.zeros(g.shape[1:], dtype=g.dtype, device=g.device) for g in grad_samples]
    norms = torch.stack([g.reshape(b, -1).norm(2, dim=1) for g in grad_samples], dim=1).norm(2, dim=1)
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    return [torch.einsum("i,i...->...", factor.to(g.dtype), g) for g in grad_samples]


def gaussian_noise(
    rng: np.random.Generator, shape: tuple[int, ...], std: float, device: Any, dtype: Any = None
) -> torch.Tensor:
    """Secret Gaussian noise ``N(0, std^2)`` of ``shape`` (ChaCha20 on the host, copied to ``device``)."""
    from tabpriv._random import secret_normal_torch

    return secret_normal_torch(rng, shape, std=std, device=device, dtype=dtype)


def noisy_gradient_(
    params: Sequence[torch.Tensor],
    rng: np.random.Generator,
    *,
    noise_multiplier: float,
    clip: float,
    expected_batch: int,
    batch: int,
    records: GhostRecords | None = None,
) -> None:
    """Set each ``p.grad`` to ``(sum of clipped per-record gradients + N(0, (z C)^2)) / b``.

    Per-record gradients are ``records`` (ghost clipping) or, when it is ``None``, read from
    ``p.grad_sample`` (opacus' ``GradSampleModule``); with an empty batch (``batch == 0``) the sum is
    zero and the noise is still added. One noise draw per step covers every parameter (in parameter
    order). ``p.grad_sample`` is cleared afterwards.
    """
    import torch

    samples: Sequence[torch.Tensor] | GhostRecords
    if batch > 0 and records is not None:
        if int(records.norms.shape[0]) != batch or len(records.params) != len(params):
            raise TabprivError(
                "The ghost-clipping norms do not match this batch; DP-SGD would add an unclipped "
                "gradient, so training stops."
            )
        samples = records
    elif batch > 0:
        materialised: list[torch.Tensor] = []
        for p in params:
            gs = getattr(p, "grad_sample", None)
            if gs is None or isinstance(gs, list) or int(gs.shape[0]) != batch:
                raise TabprivError(
                    "A parameter has no per-record gradient for this batch; DP-SGD would add an "
                    "unclipped gradient, so training stops."
                )
            materialised.append(gs)
        samples = materialised
    else:
        samples = [torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for p in params]
    summed = clip_and_sum(samples, clip)
    sizes = [int(p.numel()) for p in params]
    noise = gaussian_noise(rng, (sum(sizes),), noise_multiplier * clip, params[0].device, params[0].dtype)
    for p, s, n in zip(params, summed, torch.split(noise, sizes), strict=True):
        p.grad = ((s + n.view_as(s)) / float(expected_batch)).view_as(p).detach()
        setattr(p, "grad_sample", None)  # noqa: B010 - opacus attribute


def run_dpsgd(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    per_record_loss: Callable[[torch.Tensor], torch.Tensor],
    read_rows: Callable[[np.ndarray], torch.Tensor],
    schedule: DPSGDSchedule,
    *,
    noise_multiplier: float,
    clip: float,
    sampler_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    after_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    grad_sample_mode: str = "ghost",
) -> int:
    """Run exactly ``schedule.steps`` DP-SGD steps on ``module``; return the number executed.

    Args:
        module: The model to train (its trainable parameters get the noisy gradients).
        optimizer: Optimiser over ``module``'s parameters (Adam: post-processing of noisy gradients).
        per_record_loss: Rows ``(k, d)`` -> per-record losses ``(k,)`` (through ``module``'s layers).
        read_rows: Sorted row indices -> rows ``(k, d)`` on the training device.
        schedule: From :func:`dpsgd_schedule`; the one the accountant was given.
        noise_multiplier: ``z`` from the accountant.
        clip: Per-record clipping norm ``C``.
        sampler_rng: Secret generator of the Poisson batches.
        noise_rng: Secret generator of the gradient noise.
        after_step: Called after each optimiser step (e.g. a projection: post-processing).
        on_epoch: ``on_epoch(step, total)`` every ``schedule.steps_per_epoch`` steps.
        grad_sample_mode: ``"ghost"`` (ghost clipping, the default) or ``"hooks"`` (materialised
            per-record gradients); see the module docstring. Same sampler, noise and steps either way.

    Nothing is read back to the host inside the loop (no loss, no norm): the only host work per
    step is the secret Poisson draw and the secret noise draw, both from ChaCha20 streams.

    """
    from opacus import GradSampleModule
    from opacus.grad_sample import GradSampleModuleFastGradientClipping

    if grad_sample_mode not in GRAD_SAMPLE_MODES:
        raise PrivacyParameterError(
            f"grad_sample_mode must be one of {', '.join(GRAD_SAMPLE_MODES)}; got {grad_sample_mode!r}."
        )
    ghost = grad_sample_mode == "ghost"
    params = [p for p in module.parameters() if p.requires_grad]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # opacus' notes on hooks and secure mode (noise is ours)
        gsm: Any = (
            GradSampleModuleFastGradientClipping(
                module, batch_first=True, loss_reduction="sum", max_grad_norm=clip, use_ghost_clipping=True
            )
            if ghost
            else GradSampleModule(module, batch_first=True, loss_reduction="sum")
        )
    executed = 0
    try:
        for step in range(schedule.steps):
            # the seams are module globals, looked up at each call (so audits can patch them)
            idx = poisson_batch(sampler_rng, schedule.n_rows, schedule.sampling_probability)
            optimizer.zero_grad(set_to_none=True)
            records: GhostRecords | None = None
            if idx.size:
                xb = read_rows(idx)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if ghost:
                        records = ghost_records(gsm, params, per_record_loss(xb))
                    else:
                        per_record_loss(xb).sum().backward()
            noisy_gradient_(
                params,
                noise_rng,
                noise_multiplier=noise_multiplier,
                clip=clip,
                expected_batch=schedule.expected_batch,
                batch=int(idx.size),
                records=records,
            )
            del records
            optimizer.step()
            executed += 1
            if after_step is not None:
                after_step()
            if on_epoch is not None and (step + 1) % schedule.steps_per_epoch == 0:
                on_epoch(step + 1, schedule.steps)
    finally:
        gsm._close()  # strip opacus' hooks: the plain module is left behind
        for p in params:
            setattr(p, "grad_sample", None)  # noqa: B010 - opacus attribute
            if hasattr(p, "_norm_sample"):
                delattr(p, "_norm_sample")
    return executed


def ghost_records(gsm: Any, params: Sequence[torch.Tensor], losses: torch.Tensor) -> GhostRecords:
    """First backward pass of ghost clipping: each record's gradient norm, without the gradients.

    ``gsm`` is opacus' ``GradSampleModuleFastGradientClipping`` around the module that computed
    ``losses``; its hooks leave each parameter's per-record norms in ``p._norm_sample``. The parameter
    gradients of this pass are discarded (the second pass, in :func:`clip_and_sum`, computes the
    clipped sum).
    """
    import torch

    torch.autograd.grad(losses.sum(), list(params), retain_graph=True)
    norms = []
    for p in params:
        ns = getattr(p, "_norm_sample", None)
        if ns is None or int(ns.shape[0]) != int(losses.shape[0]):
            raise TabprivError(
                "A parameter has no per-record gradient norm for this batch; DP-SGD would add an "
                "unclipped gradient, so training stops."
            )
        norms.append(ns)
        p._norm_sample = None  # type: ignore[attr-defined]  # consumed: a stale norm is never reused
    return GhostRecords(torch.stack(norms, dim=0).norm(2, dim=0), losses, list(params), gsm)
