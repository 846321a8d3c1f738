"""The ``dp2-vae`` backend: DP²-VAE (Jiang et al., arXiv 2208.03409) on the encoded table.

Only the decoder (plus the standard normal prior) is released. The rows are split at random into K
disjoint subsets; stage 1 trains K encoders (vectorised with ``torch.func.vmap``), each with a throwaway
decoder, non-privately on its own subset; stage 2 trains a fresh decoder: each step picks a subset
uniformly at random, draws a batch from it, and updates the decoder with the batch-mean gradient
clipped to norm C plus N(0, sigma^2 C^2 I).

Privacy (replace-one adjacency; the argument is in ``docs/privacy.md``): a replaced row lives in
one subset k*. Whatever the data and the encoders, every noiseless update is a vector of norm <= C, so
a step on subset k* is a Gaussian mechanism of L2 sensitivity 2C with noise sigma*C — noise multiplier
sigma/2 relative to unit sensitivity — and any other subset's step is the same under both tables. Each
step uses subset k* with probability 1/K, i.e. it samples 1 of K "units" without replacement under
replace-one at the unit level. The T steps are accounted with Google dp-accounting's RDP accountant:
``SelfComposedDpEvent(SampledWithoutReplacementDpEvent(K, 1, GaussianDpEvent(sigma/2)), T)`` with
``NeighboringRelation.REPLACE_ONE`` (Wang, Balle & Kasiviswanathan 2019, Thm 27). For that argument to
hold the encoders are **frozen during stage 2** (the paper keeps updating theta_k, which makes the
step mechanisms share hidden state and breaks the per-step adaptive-composition argument; see the doc).

Randomness: the gradient noise, the condition-histogram noise and the per-step subset choice (whose
secrecy the 1-of-K amplification assumes) come from secret ChaCha20 streams (``context.secret_rng``);
the partition, batch rows, reparameterisation draws and initialisation are public (the argument does not
need them secret; see ``docs/privacy.md#randomness``).

Streaming (``streaming = True``): minibatches, the frozen-posterior pass (in blocks of the partition)
and the condition histogram read the table with ``table.take``/``table.iter_chunks``; what grows with
n is the ``(K, n/K)`` partition index (8 B/row) and the frozen posterior parameters
(``2 × latent_dim × 4`` B/row), not an ``n × width`` matrix.

This module is light: torch is imported only inside :mod:`tabpriv.backends.vae.dp2_torch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from tabpriv._device import resolve_threads, torch_threads
from tabpriv.accounting import dp2vae as _acc
from tabpriv.accounting.dp2vae import DP2VAECalibration
from tabpriv.backends._params import Constraint, Interval, Options, Satisfies, check_value
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.budget import PrivacyBudget
from tabpriv.errors import DataValidationError, PrivacyParameterError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

__all__ = [
    "DP2VAEBackend",
    "DP2VAECalibration",
    "calibrate_dp2vae",
    "dp2vae_epsilon",
    "dp2vae_epsilon_curve",
    "resolve_condition_column",
    "step_sensitivity",
]

_AUTO_MAX_SUBSETS = 1000
_AUTO_SUBSET_ROWS = 32


def step_sensitivity(clip: float) -> float:
    """Replace-one L2 sensitivity of one decoder update: ``2C`` (two updates of norm <= C each)."""
    return 2.0 * clip


def dp2vae_epsilon(
    noise: float,
    n_subsets: int,
    steps: int,
    delta: float,
    hist_multiplier: float | None = None,
) -> float:
    """:func:`tabpriv.accounting.dp2vae_epsilon` at this module's :func:`step_sensitivity` (seam)."""
    return _acc.dp2vae_epsilon(
        noise, n_subsets, steps, delta, hist_multiplier, sensitivity=step_sensitivity(1.0)
    )


def dp2vae_epsilon_curve(
    noise: float,
    n_subsets: int,
    steps: list[int],
    delta: float,
    hist_multiplier: float | None = None,
) -> list[float]:
    """:func:`tabpriv.accounting.dp2vae_epsilon_curve` at this module's :func:`step_sensitivity`."""
    return _acc.dp2vae_epsilon_curve(
        noise, n_subsets, steps, delta, hist_multiplier, sensitivity=step_sensitivity(1.0)
    )


def calibrate_dp2vae(
    epsilon: float,
    delta: float,
    n_subsets: int,
    steps: int,
    condition_fraction: float | None = None,
) -> DP2VAECalibration:
    """Smallest sigma such that the DP²-VAE run (plus the condition histogram) is (epsilon, delta)-DP.

    A seam (the audits patch it and :func:`step_sensitivity`) around
    :func:`tabpriv.accounting.calibrate_dp2vae_noise`.
    """
    return _acc.calibrate_dp2vae_noise(
        epsilon, delta, n_subsets, steps, condition_fraction, sensitivity=step_sensitivity(1.0)
    )


def check_numeric_bins(value: object) -> None:
    """Validate the ``numeric_bins`` parameter shared by the VAE backends (0: regression head)."""
    check_value("numeric_bins", value, NUMERIC_BINS)


def check_condition_column(condition_on: str | None, spans: tuple[ColumnSpan, ...]) -> None:
    """Raise unless ``condition_on`` is ``None`` or names a categorical column of ``spans``."""
    if condition_on is None:
        return
    span = next((s for s in spans if s.name == condition_on), None)
    if span is None or span.kind != "categorical":
        raise DataValidationError(
            f"condition_on must name a categorical column of the table; got {condition_on!r}. "
            f"Categorical columns: {[s.name for s in spans if s.kind == 'categorical']}."
        )


def resolve_condition_column(
    condition_on: str | None, target: str | None, spans: tuple[ColumnSpan, ...]
) -> str | None:
    """The column a VAE decoder is conditioned on: ``condition_on``, else a categorical ``target``.

    The one rule of ``dp2-vae`` and ``dpsgd-vae``. Public: it reads the column names and kinds of
    ``spans`` (the schema), never the data. A numeric ``target`` is not conditioned on.

    Raises:
        PrivacyParameterError: ``target`` is not a column of the table (only when ``condition_on``
            is ``None``).

    """
    if condition_on is not None or target is None:
        return condition_on
    span = next((s for s in spans if s.name == target), None)
    if span is None:
        raise PrivacyParameterError(
            f"target={target!r} is not a column of the table; the columns are "
            f"{', '.join(s.name for s in spans)}. Pass one of them, or target=None."
        )
    return target if span.kind == "categorical" else None


#: Constraints shared by the VAE backends' parameters (see :mod:`tabpriv.backends._params`).
POSITIVE_INT: list[Constraint | None] = [Interval(int, 1, None, closed="left")]
POSITIVE_NUMBER: list[Constraint | None] = [Interval(float, 0, None, closed="neither")]
NUMERIC_BINS: list[Constraint | None] = [Options((0,)), Interval(int, 2, None, closed="left")]
COLUMN_NAME: list[Constraint | None] = [Satisfies(lambda v: isinstance(v, str), "a column name (str)"), None]
OPEN_FRACTION: list[Constraint | None] = [Interval(float, 0, 1, closed="neither")]


@dataclass(frozen=True)
class DP2VAENoise:
    """The noise parameters :meth:`DP2VAEBackend.fit` consumes (from the plan, public only).

    Attributes:
        calibration: The calibrated noise (sigma, histogram multiplier, epsilon, accountant).
        n_subsets: K used for this table.
        delta: Delta of the spend.
        condition_on: The column the decoder is conditioned on (``condition_on``, or the categorical
            ``target``), ``None`` when unconditional; a public choice made from the spans.

    """

    calibration: DP2VAECalibration
    n_subsets: int
    delta: float
    condition_on: str | None = None


class ReleasedDecoder(Protocol):
    """What sampling a released decoder reads off a fitted ``dp2-vae`` or ``dpsgd-vae`` backend."""

    spans_: tuple[ColumnSpan, ...]
    numeric_bins: int
    hidden: int
    latent_dim: int
    integer_levels_: int
    decoder_state_: dict[str, np.ndarray]
    condition_probs_: np.ndarray | None
    device_: str


def sample_released_decoder(
    backend: ReleasedDecoder, n: int, seed: int, *, condition_on: str | None
) -> np.ndarray:
    """Decode ``n`` draws z ~ N(0, I) from a fitted backend's released decoder (post-processing).

    The one sampler of ``dp2-vae`` and ``dpsgd-vae``; torch is imported only here. It runs on the
    backend's ``device_``: the fit's device, ``"cpu"`` after a load, or what :func:`move_to` set.
    ``condition_on`` is the column the decoder was conditioned on (each backend resolves its own).
    """
    from tabpriv.backends.vae.dp2_torch import DecoderConfig, sample_decoder

    config = DecoderConfig(
        backend.spans_,
        condition_on,
        backend.numeric_bins,
        backend.hidden,
        backend.latent_dim,
        backend.integer_levels_,
        backend.device_,
    )
    return sample_decoder(config, backend.decoder_state_, backend.condition_probs_, n, seed)


def move_to(backend: Backend, device: str) -> str:
    """Resolve ``device`` for ``backend`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``); set its ``device_``.

    Used by the VAE backends' ``to()`` (e.g. after :meth:`Synthesizer.load <tabpriv.Synthesizer.load>`,
    which restores every backend on the CPU). Sampling is post-processing: the device changes where
    the draws run, never what they may reveal.

    Raises:
        DeviceError: The device is unknown, or is a GPU and none is available.

    """
    from tabpriv._device import resolve_device

    dev = resolve_device(device, backend.devices)
    backend.device_ = dev  # type: ignore[attr-defined]
    return dev


def pack_decoder_state(
    decoder_state: dict[str, np.ndarray], condition_probs: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Arrays to save for a VAE release: the decoder weights and, if any, the noisy condition marginal."""
    arrays = {f"decoder.{k}": v for k, v in decoder_state.items()}
    if condition_probs is not None:
        arrays["condition_probs"] = condition_probs
    return arrays


def unpack_decoder_state(
    arrays: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Inverse of :func:`pack_decoder_state`."""
    decoder = {k[len("decoder.") :]: np.asarray(v) for k, v in arrays.items() if k.startswith("decoder.")}
    cp = arrays.get("condition_probs")
    return decoder, None if cp is None else np.asarray(cp, dtype=np.float64)


class DP2VAEBackend(Backend):
    """DP²-VAE: non-private encoders on K disjoint subsets, decoder trained with noisy gradients.

    Args:
        n_subsets: K, the number of disjoint subsets (and encoders). ``None``: ``min(1000, n // 32)``
            (at least 1), i.e. subsets of about 32 rows (n is public under replace-one).
        steps: T, the number of noisy decoder updates in stage 2.
        clip: C, the clipping norm of the batch-mean decoder gradient.
        batch_size: Rows per step (capped by the subset size).
        latent_dim: Latent size.
        hidden: Width of the hidden layers.
        lr: Adam learning rate (both stages).
        pretrain_steps: Stage-1 steps (each step updates all K encoders at once).
        condition_on: Optional categorical column to condition the decoder on (its noisy histogram
            is paid from the budget, see ``condition_fraction``).
        target: Public name of the release's classification target (``Synthesizer(target=...)``, the
            CLI's ``--target``). When ``condition_on`` is ``None`` and ``target`` is a categorical
            column, the decoder is conditioned on it, exactly as with ``condition_on=target`` (and paid
            the same way); a numeric target is not conditioned on. ``condition_on`` wins. As for
            ``dpsgd-vae`` (``docs/vae_quality.md``).
        condition_fraction: Share of epsilon (as a standalone Gaussian) spent on the condition's
            histogram when the decoder is conditioned.
        numeric_bins: Bins of each number's decoder head (a discretised likelihood; integers with at
            most 100 values (:data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS`, or this many if
            larger) get one bin per value, other numbers the schema's ``bins`` hint or this many
            equal-width bins, sampled uniformly within). ``0`` keeps the regression head
            (squared error, sampled as the decoder mean), which collapses numbers toward their mean.
        threads: torch CPU threads for fit and sample (``None``: ``$TABPRIV_THREADS``, else 1; see
            ``docs/threads.md``). Set around each call and restored afterwards; no effect on the output.

    """

    name = "dp2-vae"
    guarantee = "dp"
    devices = ("cpu", "cuda")
    summary = "DP²-VAE: private decoder trained on K non-private encoders (Jiang et al. 2022)"
    streaming: ClassVar[bool] = True
    quick_params: ClassVar[dict[str, Any]] = {
        "n_subsets": 10,
        "steps": 40,
        "pretrain_steps": 20,
        "hidden": 16,
        "latent_dim": 4,
        "batch_size": 16,
    }

    def __init__(
        self,
        *,
        n_subsets: int | None = None,
        steps: int = 10000,
        clip: float = 1.0,
        batch_size: int = 32,
        latent_dim: int = 8,
        hidden: int = 32,
        lr: float = 1e-3,
        pretrain_steps: int = 50,
        condition_on: str | None = None,
        target: str | None = None,
        condition_fraction: float = 0.1,
        numeric_bins: int = 20,
        threads: int | None = None,
    ) -> None:
        self.n_subsets = n_subsets
        self.steps = steps
        self.clip = clip
        self.batch_size = batch_size
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.lr = lr
        self.pretrain_steps = pretrain_steps
        self.condition_on = condition_on
        self.target = target
        self.condition_fraction = condition_fraction
        self.numeric_bins = numeric_bins
        self.threads = threads

    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "n_subsets": [*POSITIVE_INT, None],
        "steps": POSITIVE_INT,
        "clip": POSITIVE_NUMBER,
        "batch_size": POSITIVE_INT,
        "latent_dim": POSITIVE_INT,
        "hidden": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "pretrain_steps": POSITIVE_INT,
        "condition_on": COLUMN_NAME,
        "target": COLUMN_NAME,
        "condition_fraction": OPEN_FRACTION,
        "numeric_bins": NUMERIC_BINS,
        "threads": [*POSITIVE_INT, None],
    }

    def condition_column(self, spans: tuple[ColumnSpan, ...]) -> str | None:
        """The column the decoder is conditioned on (:func:`resolve_condition_column`; public)."""
        return resolve_condition_column(self.condition_on, self.target, spans)

    def n_subsets_for(self, n_rows: int) -> int:
        """K used for a table of ``n_rows`` rows."""
        if self.n_subsets is None:
            return max(1, min(_AUTO_MAX_SUBSETS, n_rows // _AUTO_SUBSET_ROWS))
        return int(self.n_subsets)

    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Validate, then calibrate sigma to the whole ``budget`` (public spans and row count only)."""
        self.validate_params()
        if n_rows < self.n_subsets_for(n_rows):
            raise DataValidationError(
                f"dp2-vae needs at least n_subsets={self.n_subsets} rows; got {n_rows}. Lower n_subsets."
            )
        condition_on = self.condition_column(spans)
        check_condition_column(condition_on, spans)
        eps, delta = budget.epsilon, budget.delta
        k_sub = self.n_subsets_for(n_rows)
        cal = calibrate_dp2vae(
            eps,
            delta,
            k_sub,
            self.steps,
            self.condition_fraction if condition_on is not None else None,
        )
        params: dict[str, Any] = {
            "sigma": cal.noise,
            "clip_norm": float(self.clip),
            "noise_std": cal.noise * float(self.clip),
            "l2_sensitivity_per_step": step_sensitivity(float(self.clip)),
            "n_subsets": k_sub,
            "sampling_probability": 1.0 / k_sub,
            "steps": self.steps,
        }
        if cal.hist_multiplier is not None:
            params["condition_histogram_noise_multiplier"] = cal.hist_multiplier
            params["condition_histogram_sigma"] = cal.hist_multiplier * math.sqrt(2.0)
        spend = PlannedSpend(
            "DP²-VAE decoder training (batch-mean clipped Gaussian updates on 1 of K subsets)"
            + (" + Gaussian condition histogram" if cal.hist_multiplier is not None else ""),
            cal.epsilon,
            delta,
            cal.accountant,
            params,
        )
        noise = DP2VAENoise(calibration=cal, n_subsets=k_sub, delta=delta, condition_on=condition_on)
        return PrivacyPlan.build(self.name, (spend,), noise, spans=spans, n_rows=n_rows)

    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> DP2VAEBackend:
        """Run both stages with the planned (already paid) noise."""
        self.check_plan(plan, table)
        noise: DP2VAENoise = plan.noise
        cal, k_sub, delta = noise.calibration, noise.n_subsets, noise.delta
        # -- only now is the data touched --------------------------------------------------------
        from tabpriv.backends.vae.dp2_torch import DP2VAETrainConfig, train_dp2vae

        self.n_subsets_ = k_sub
        config = DP2VAETrainConfig(
            n_subsets=k_sub,
            steps=self.steps,
            clip=float(self.clip),
            batch_size=self.batch_size,
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            lr=self.lr,
            pretrain_steps=self.pretrain_steps,
            condition_on=noise.condition_on,
            numeric_bins=self.numeric_bins,
            integer_levels=DEFAULT_MAX_LEVELS,
        )

        def curve(steps: list[int]) -> list[float]:
            return dp2vae_epsilon_curve(cal.noise, k_sub, steps, delta, cal.hist_multiplier)

        with torch_threads(resolve_threads(self.threads)):
            result = train_dp2vae(
                config, table, cal, context, eps_total=cal.epsilon, delta=delta, epsilon_curve=curve
            )
        self.decoder_state_ = result.decoder_state
        self.condition_probs_ = result.condition_probs
        self.condition_column_ = noise.condition_on
        self.sigma_ = cal.noise
        self.hist_multiplier_ = cal.hist_multiplier
        self.epsilon_ = cal.epsilon
        self.delta_ = delta
        self.accountant_ = cal.accountant
        self.losses_ = result.losses
        self.timings_ = result.timings
        self.spans_ = table.spans
        self.integer_levels_ = DEFAULT_MAX_LEVELS
        self.device_ = context.device
        return self

    def to(self, device: str) -> DP2VAEBackend:
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
            "sigma": self.sigma_,
            "noise_std": self.sigma_ * self.clip,
            "clip_norm": self.clip,
            "l2_sensitivity_per_step": step_sensitivity(self.clip),
            "noise_multiplier_unit_sensitivity": self.sigma_ / 2,
            "n_subsets": self.n_subsets_,
            "sampling_probability": 1 / self.n_subsets_,
            "steps": self.steps,
        }
        if self.hist_multiplier_ is not None:
            noise["condition_histogram_noise_multiplier"] = self.hist_multiplier_
        return PrivacyDetails(
            mechanism=(
                "DP²-VAE: decoder updated T times with the batch-mean gradient of one random subset "
                "(of K disjoint subsets) clipped to C plus N(0, sigma^2 C^2 I); encoders trained "
                "non-privately per subset and never released; frozen during decoder training"
            ),
            adjacency="replace-one",
            accountant=self.accountant_,
            noise=noise,
            covered=[
                "the released decoder weights (and the fixed N(0, I) prior) and every table sampled "
                "from them",
                "the noisy condition histogram, when conditioning",
            ],
            not_covered=[
                "the encoders: trained without privacy, discarded and never saved",
                "the number of rows n, treated as public (replace-one adjacency)",
                "side channels: floating-point noise sampling (Mironov 2012) is not hardened",
            ],
            extra={
                "epsilon": self.epsilon_,
                "delta": self.delta_,
                "randomness": (
                    "gradient noise, condition-histogram noise and the subset each step uses: secret "
                    "ChaCha20 streams (randomgen; 256-bit OS-entropy key unless seeded), noise drawn on "
                    "the host and copied to the device; initialisation, partition, batch rows and "
                    "reparameterisation draws: public streams of the run's seed"
                ),
            },
        )

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Decoder weights (only) as arrays; figures as metadata."""
        self.check_fitted()
        arrays = pack_decoder_state(self.decoder_state_, self.condition_probs_)
        meta = {
            "sigma": self.sigma_,
            "hist_multiplier": self.hist_multiplier_,
            "epsilon": self.epsilon_,
            "delta": self.delta_,
            "accountant": self.accountant_,
            "n_subsets": self.n_subsets_,
            "spans": [s.to_dict() for s in self.spans_],
            "integer_levels": self.integer_levels_,
        }
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output."""
        self.decoder_state_, self.condition_probs_ = unpack_decoder_state(arrays)
        self.sigma_ = float(meta["sigma"])
        hm = meta.get("hist_multiplier")
        self.hist_multiplier_ = None if hm is None else float(hm)
        self.epsilon_ = float(meta["epsilon"])
        self.delta_ = float(meta["delta"])
        self.accountant_ = str(meta["accountant"])
        self.n_subsets_ = int(meta["n_subsets"])
        # Files saved before the shared integer rule decode with the old one (0: exact up to numeric_bins).
        self.integer_levels_ = int(meta.get("integer_levels", 0))
        self.device_ = "cpu"  # until to(device)
        self.losses_ = []
        self.condition_column_ = self.condition_on
        if "spans" in meta:
            self.spans_ = tuple(ColumnSpan.from_dict(d) for d in meta["spans"])
            # The same public choice as the plan's (parameters + the spans), so nothing more is saved.
            self.condition_column_ = self.condition_column(self.spans_)
