"""The ``dpsgd-vae`` backend: the same VAE as ``dp2-vae`` trained end to end with DP-SGD.

DP-SGD as in :mod:`tabpriv.backends.vae.dpsgd_loop`: per-example gradients (opacus' ``GradSampleModule``)
clipped to ``clip``, Poisson sampling with rate ``q = batch_size / n`` drawn from a secret ChaCha20
stream, Gaussian noise ``N(0, (z clip)^2)`` from another secret ChaCha20 stream, exactly
``T = epochs * ceil(n / batch_size)`` steps.

Adjacency: **replace-one** (one record replaced by another; the row count ``n`` is public), accounted
directly: ``z`` is the smallest noise multiplier (within 0.1%) for which dp-accounting's PLD
accountant gives ``epsilon <= target`` for ``T`` Poisson-subsampled Gaussian steps at rate ``q`` under
``NeighboringRelation.REPLACE_ONE`` (:func:`tabpriv.accounting.calibrate_dpsgd`). The add/remove-one
figure of the same mechanism is reported as an extra only. (Before, the noise was calibrated with
opacus' add/remove RDP accountant and converted by group privacy, about 1.85x conservative in epsilon;
:func:`opacus_epsilon` and :func:`replace_one_from_add_remove` remain as that upper-bound cross-check.)

Only the decoder (and the N(0, I) prior) is released; no training loss is kept, logged or saved.
Torch and opacus are imported lazily.

Streaming (``streaming = True``): each Poisson batch is read with ``table.take`` and the condition
histogram with ``table.iter_chunks``; no ``n × width`` matrix is built, and the fit is bit-identical to
one on the materialised matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tabpriv._device import resolve_threads, torch_threads
from tabpriv.accounting import calibrate_gaussian, dpsgd_epsilon
from tabpriv.accounting.dpsgd import opacus_epsilon, replace_one_from_add_remove
from tabpriv.backends._params import Constraint, Options
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.backends.vae.dp2 import (
    COLUMN_NAME,
    NUMERIC_BINS,
    OPEN_FRACTION,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    check_condition_column,
    move_to,
    pack_decoder_state,
    resolve_condition_column,
    sample_released_decoder,
    unpack_decoder_state,
)
from tabpriv.backends.vae.dpsgd_loop import GRAD_SAMPLE_MODES
from tabpriv.budget import PrivacyBudget
from tabpriv.errors import BudgetExceededError, PrivacyParameterError, TabprivError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

if TYPE_CHECKING:
    from tabpriv.backends.vae.dpsgd_loop import DPSGDSchedule

__all__ = ["DPSGDVAEBackend", "opacus_epsilon", "replace_one_from_add_remove"]


# The opacus cross-check (add/remove-one RDP, then group privacy) lives in tabpriv.accounting.dpsgd.


def _dpsgd_epsilon_so_far(z: float, q: float, steps: int, delta: float, interval: float) -> float:
    """Replace-one epsilon after ``steps`` steps (progress messages; public figures only)."""
    return dpsgd_epsilon(z, q, steps, delta, value_discretization_interval=interval)


@dataclass(frozen=True)
class DPSGDVAENoise:
    """The noise parameters :meth:`DPSGDVAEBackend.fit` consumes (from the plan, public only).

    Attributes:
        noise_multiplier: DP-SGD noise multiplier z.
        schedule: The Poisson rate and step count that run (and were accounted).
        hist_sigma: Gaussian scale of the condition histogram (``None``: no conditioning).
        eps_hist: Epsilon of the condition histogram (0 without).
        delta_sgd: Delta of the DP-SGD part.
        epsilon: Total epsilon of the spend.
        delta: Total delta of the spend.
        accountant: Accountant, in words.
        value_discretization_interval: PLD discretisation used by the accountant.
        condition_on: The column the decoder is conditioned on (``condition_on``, or the categorical
            ``target``), ``None`` when unconditional; a public choice made from the spans.

    """

    noise_multiplier: float
    schedule: DPSGDSchedule
    hist_sigma: float | None
    eps_hist: float
    delta_sgd: float
    epsilon: float
    delta: float
    accountant: str
    value_discretization_interval: float
    condition_on: str | None = None


class DPSGDVAEBackend(Backend):
    """VAE trained with DP-SGD (replace-one PLD accounting); the baseline DP²-VAE is compared with.

    Args:
        epochs: Expected passes over the data (steps = epochs * ceil(n / batch_size)).
        batch_size: Expected Poisson batch size.
        clip: Per-example gradient clipping norm.
        latent_dim: Latent size.
        hidden: Width of the hidden layers.
        lr: Adam learning rate.
        condition_on: Optional categorical column to condition the decoder on (its noisy histogram is
            paid from the budget: ``condition_fraction`` of epsilon and delta; DP-SGD gets the rest).
        target: Public name of the release's classification target (``Synthesizer(target=...)``, the
            CLI's ``--target``). When ``condition_on`` is ``None`` and ``target`` is a categorical
            column, the decoder is conditioned on it, exactly as with ``condition_on=target`` (and paid
            the same way); a numeric target is not conditioned on. ``condition_on`` wins. Conditioning
            on the target is what carries its dependence on Adult (LR AUC 0.66 -> 0.88 at epsilon 5.1;
            ``docs/vae_quality.md``).
        condition_fraction: Share of epsilon and delta spent on the condition's noisy histogram.
        numeric_bins: Bins of each number's decoder head (a discretised likelihood; integers with at
            most 100 values (:data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS`, or this many if
            larger) get one bin per value, other numbers the schema's ``bins`` hint or
            this many equal-width bins, sampled uniformly within). ``0`` keeps the regression head
            (squared error, sampled as the decoder mean), which collapses numbers toward their mean.
        threads: torch CPU threads for fit and sample (``None``: ``$TABPRIV_THREADS``, else 1; see
            ``docs/threads.md``). Set around each call and restored afterwards; no effect on the output.
        grad_sample_mode: How DP-SGD clips per-record gradients: ``"ghost"`` (ghost clipping: each
            record's gradient norm without the gradient itself, then one more backward pass; the
            default) or ``"hooks"`` (materialised per-record gradients, the mode of tabpriv before
            issue 18, whose outputs it reproduces bit for bit). Same sampler, noise multiplier, step
            count and guarantee; the trained weights differ by float rounding only.

    """

    name = "dpsgd-vae"
    guarantee = "dp"
    devices = ("cpu", "cuda")
    summary = "VAE trained end to end with DP-SGD (replace-one PLD accounting); baseline of dp2-vae"
    streaming: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "batch_size": 32,
        "hidden": 16,
        "latent_dim": 4,
    }

    def __init__(
        self,
        *,
        epochs: int = 10,
        batch_size: int = 256,
        clip: float = 1.0,
        latent_dim: int = 8,
        hidden: int = 32,
        lr: float = 1e-3,
        condition_on: str | None = None,
        target: str | None = None,
        condition_fraction: float = 0.1,
        numeric_bins: int = 20,
        threads: int | None = None,
        grad_sample_mode: str = "ghost",
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.clip = clip
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.lr = lr
        self.condition_on = condition_on
        self.target = target
        self.condition_fraction = condition_fraction
        self.numeric_bins = numeric_bins
        self.threads = threads
        self.grad_sample_mode = grad_sample_mode

    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "clip": POSITIVE_NUMBER,
        "latent_dim": POSITIVE_INT,
        "hidden": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "condition_on": COLUMN_NAME,
        "target": COLUMN_NAME,
        "condition_fraction": OPEN_FRACTION,
        "numeric_bins": NUMERIC_BINS,
        "threads": [*POSITIVE_INT, None],
        "grad_sample_mode": [Options(GRAD_SAMPLE_MODES)],
    }

    def condition_column(self, spans: tuple[ColumnSpan, ...]) -> str | None:
        """The column the decoder is conditioned on: ``condition_on``, else a categorical ``target``.

        Public: it reads the column names and kinds of ``spans`` (the schema), never the data.

        Raises:
            PrivacyParameterError: ``target`` is not a column of the table.

        """
        return resolve_condition_column(self.condition_on, self.target, spans)

    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Validate, then calibrate the noise multiplier (replace-one PLD) to ``budget``; no data read."""
        from tabpriv.backends.vae import dpsgd_loop

        self.validate_params()
        condition_on = self.condition_column(spans)
        check_condition_column(condition_on, spans)
        eps, delta = budget.epsilon, budget.delta
        schedule = dpsgd_loop.dpsgd_schedule(n_rows, self.batch_size, self.epochs)
        q, steps = schedule.sampling_probability, schedule.steps
        hist_sigma: float | None = None
        eps_hist = delta_hist = 0.0
        if condition_on is not None:
            eps_hist, delta_hist = self.condition_fraction * eps, self.condition_fraction * delta
            hist_sigma = calibrate_gaussian(eps_hist, delta_hist, math.sqrt(2.0)).sigma
        eps_sgd, delta_sgd = eps - eps_hist, delta - delta_hist
        try:
            cal = dpsgd_loop.calibrate_noise_multiplier(eps_sgd, delta_sgd, schedule)
        except PrivacyParameterError as exc:
            raise BudgetExceededError(
                f"No noise level fits the budget left (epsilon={eps:.3g}, delta={delta:.3g}) "
                f"for {steps} DP-SGD steps at sampling rate {q:.3g}: {exc} Nothing was run on "
                "the data. Raise epsilon or lower epochs."
            ) from exc
        z = cal.noise_multiplier
        accountant = cal.accountant + (
            "; + analytic Gaussian (condition histogram), basic composition" if hist_sigma else ""
        )
        params: dict[str, Any] = {
            "noise_multiplier": z,
            "clip_norm": float(self.clip),
            "sampling_probability": q,
            "steps": steps,
            "sampler": dpsgd_loop.SAMPLER_TEXT,
            "pld_value_discretization_interval": cal.value_discretization_interval,
        }
        if hist_sigma is not None:
            params["condition_histogram_sigma"] = hist_sigma
        spend = PlannedSpend(
            "DP-SGD VAE (per-example clipping, Poisson sampling, Gaussian noise)"
            + (" + Gaussian condition histogram" if hist_sigma is not None else ""),
            cal.epsilon + eps_hist,
            delta_sgd + delta_hist,
            accountant,
            params,
        )
        noise = DPSGDVAENoise(
            noise_multiplier=z,
            schedule=schedule,
            hist_sigma=hist_sigma,
            eps_hist=eps_hist,
            delta_sgd=delta_sgd,
            epsilon=cal.epsilon + eps_hist,
            delta=delta_sgd + delta_hist,
            accountant=accountant,
            value_discretization_interval=cal.value_discretization_interval,
            condition_on=condition_on,
        )
        return PrivacyPlan.build(self.name, (spend,), noise, spans=spans, n_rows=n_rows)

    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> DPSGDVAEBackend:
        """Train with the planned (already paid) noise multiplier, sampler and step count."""
        self.check_plan(plan, table)
        noise: DPSGDVAENoise = plan.noise
        z, schedule, hist_sigma = noise.noise_multiplier, noise.schedule, noise.hist_sigma
        q, steps = schedule.sampling_probability, schedule.steps
        eps_hist, delta_sgd, accountant = noise.eps_hist, noise.delta_sgd, noise.accountant
        interval = noise.value_discretization_interval
        # -- only now is the data touched --------------------------------------------------------
        from tabpriv.backends.vae.dpsgd_torch import DPSGDVAETrainConfig, train_dpsgd_vae

        def progress(step: int, total: int) -> None:
            spent = _dpsgd_epsilon_so_far(z, q, step, delta_sgd, interval)
            context.report(
                step, total, f"dpsgd-vae step {step}/{total}: epsilon spent {spent:.3f} (replace-one)"
            )

        on_epoch = progress if context.progress is not None else None
        config = DPSGDVAETrainConfig(
            condition_on=noise.condition_on,
            numeric_bins=self.numeric_bins,
            hidden=self.hidden,
            latent_dim=self.latent_dim,
            lr=self.lr,
            clip=float(self.clip),
            integer_levels=DEFAULT_MAX_LEVELS,
            grad_sample_mode=self.grad_sample_mode,
        )
        with torch_threads(resolve_threads(self.threads)):
            res = train_dpsgd_vae(config, table, z, schedule, hist_sigma, context, on_epoch)
        if res.steps_executed != steps:  # pragma: no cover - run_dpsgd runs exactly schedule.steps
            raise TabprivError(f"DP-SGD ran {res.steps_executed} steps but {steps} were accounted.")
        self.decoder_state_ = res.decoder_state
        self.condition_probs_ = res.condition_probs
        self.condition_column_ = noise.condition_on
        self.noise_multiplier_ = z
        self.sample_rate_ = q
        self.steps_ = steps
        self.steps_executed_ = res.steps_executed
        self.hist_sigma_ = hist_sigma
        self.epsilon_ = noise.epsilon
        self.delta_ = noise.delta
        self.epsilon_add_remove_ = dpsgd_epsilon(
            z, q, steps, delta_sgd, value_discretization_interval=interval,
            adjacency="add/remove-one",
        ) + eps_hist  # fmt: skip
        self.accountant_ = accountant
        self.spans_ = table.spans
        self.integer_levels_ = DEFAULT_MAX_LEVELS
        self.device_ = context.device
        return self

    def to(self, device: str) -> DPSGDVAEBackend:
        """Sample on ``device`` from now on (a loaded backend samples on the CPU until moved)."""
        move_to(self, device)
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Decode ``n`` draws z ~ N(0, I) (post-processing of the released decoder)."""
        self.check_fitted()
        with torch_threads(resolve_threads(self.threads)):
            return sample_released_decoder(self, n, seed, condition_on=self.condition_column_)

    def privacy_details(self) -> PrivacyDetails:
        """State the mechanism, accountant and noise."""
        self.check_fitted()
        noise: dict[str, Any] = {
            "noise_multiplier": self.noise_multiplier_,
            "clip_norm": self.clip,
            "sampling_probability": self.sample_rate_,
            "steps": self.steps_,
            "sampler": "Poisson (secret ChaCha20 stream), rate batch_size / n",
            "noise_source": "ChaCha20 (secret stream)",
        }
        if self.hist_sigma_ is not None:
            noise["condition_histogram_sigma"] = self.hist_sigma_
        return PrivacyDetails(
            mechanism="DP-SGD on the whole VAE (per-example clipping, Poisson sampling, Gaussian noise)",
            adjacency="replace-one",
            accountant=self.accountant_,
            noise=noise,
            covered=[
                "replace-one adjacency: the guarantee holds for any two tables that differ in one "
                "record replaced by another (same number of rows), accounted directly by the PLD "
                "accountant for exactly the sampler and steps that ran",
                "the released decoder weights (and the fixed N(0, I) prior) and every table sampled "
                "from them; the encoder, also trained with DP-SGD, is not released",
                "the noisy condition histogram, when conditioning",
            ],
            not_covered=[
                "the number of rows n, treated as public (replace-one adjacency; the sampling rate "
                "batch_size / n uses it)",
                "side channels: floating-point noise sampling (Mironov 2012) is not hardened",
            ],
            extra={
                "epsilon": self.epsilon_,
                "delta": self.delta_,
                "epsilon_add_remove_one": self.epsilon_add_remove_,
                "steps_executed": self.steps_executed_,
            },
        )

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Decoder weights as arrays; figures as metadata."""
        self.check_fitted()
        arrays = pack_decoder_state(self.decoder_state_, self.condition_probs_)
        meta = {
            "noise_multiplier": self.noise_multiplier_,
            "sample_rate": self.sample_rate_,
            "steps": self.steps_,
            "hist_sigma": self.hist_sigma_,
            "epsilon": self.epsilon_,
            "delta": self.delta_,
            "epsilon_add_remove": self.epsilon_add_remove_,
            "steps_executed": self.steps_executed_,
            "accountant": self.accountant_,
            "spans": [s.to_dict() for s in self.spans_],
            "integer_levels": self.integer_levels_,
        }
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output."""
        self.decoder_state_, self.condition_probs_ = unpack_decoder_state(arrays)
        self.noise_multiplier_ = float(meta["noise_multiplier"])
        self.sample_rate_ = float(meta["sample_rate"])
        self.steps_ = int(meta["steps"])
        self.steps_executed_ = int(meta.get("steps_executed", self.steps_))
        hs = meta.get("hist_sigma")
        self.hist_sigma_ = None if hs is None else float(hs)
        self.epsilon_ = float(meta["epsilon"])
        self.delta_ = float(meta["delta"])
        self.epsilon_add_remove_ = float(meta["epsilon_add_remove"])
        self.accountant_ = str(meta["accountant"])
        # Files saved before the shared integer rule decode with the old one (0: exact up to numeric_bins).
        self.integer_levels_ = int(meta.get("integer_levels", 0))
        self.device_ = "cpu"  # until to(device)
        self.condition_column_ = self.condition_on
        if "spans" in meta:
            self.spans_ = tuple(ColumnSpan.from_dict(d) for d in meta["spans"])
            # The same public choice as the plan's (parameters + the spans), so nothing more is saved.
            self.condition_column_ = self.condition_column(self.spans_)
