"""``lipschitz-vae``: Lipschitz-constrained VAE (Groß & Wunder, arXiv 2304.11336), honestly labelled.

Idea of the paper: if the encoder mean ``mu(.)`` is ``L``-Lipschitz (L2 -> L2), the encoder noise is a
fixed isotropic Gaussian of scale ``s`` and every record lies in a set of L2 diameter ``D``, then one
noisy latent code ``mu(x) + s * xi`` (and anything decoded from it) is a Gaussian mechanism with L2
sensitivity ``L * D``: ``mu``-GDP with ``mu = L * D / s``; ``K`` codes per record give
``sqrt(K) * L * D / s``. This covers the record *given the trained model*; it does not cover training
encoder and decoder on the same data.

Two modes:

* ``mode="dp"`` (default, end-to-end DP): the VAE is trained with DP-SGD (:mod:`.dpsgd_loop`: Poisson
  sampling and Gaussian noise from secret ChaCha20 streams, accounted by dp-accounting's PLD under
  replace-one adjacency for exactly the rate and steps that run), the encoder mean is kept
  ``L``-Lipschitz by an exact spectral projection after each step and certified at the end by SVD.
  ``release="prior"`` releases decoded prior samples (cost: the training epsilon);
  ``release="reconstruction"`` releases ``K`` decoded noisy codes per training row (cost: training
  epsilon + the per-record Gaussian mechanism, converted from GDP to (epsilon, delta) exactly and
  recorded as a second ledger spend).
* ``mode="paper"``: non-private training, noisy reconstructions released. The guarantee is
  conditional on the trained model and **not** end-to-end differential privacy; refused unless
  ``allow_paper_mode=True``.

Adjacency: **replace-one** everywhere (the row count is public); both spends compose by basic
composition. The per-record noise of a reconstruction release is also drawn from a secret stream.
No training loss is kept, logged or saved.

torch and opacus are imported lazily; the torch code lives in :mod:`tabpriv.backends.vae.lipschitz_torch`.

Streaming (``streaming = True``): every minibatch (Poisson batches in dp mode, shuffled batches
in paper mode) is read with ``table.take`` and the reconstruction release with ``table.iter_chunks``;
each row read is clipped to ``row_norm_bound`` with the function ``clipped_rows()`` applies, so the rows
seen are exactly those of ``table.clipped_rows()``, never materialised as an ``n × width`` matrix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tabpriv._device import resolve_threads, torch_threads
from tabpriv._random import block_seed, derive_seed
from tabpriv.accounting.gdp import calibrate_gdp_noise, gdp_delta, gdp_epsilon, gdp_mu
from tabpriv.backends._params import Boolean, Constraint, Interval, Options
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.backends.vae.dp2 import NUMERIC_BINS, OPEN_FRACTION, POSITIVE_INT, POSITIVE_NUMBER
from tabpriv.backends.vae.dpsgd_loop import GRAD_SAMPLE_MODES, SAMPLER_TEXT
from tabpriv.budget import GuaranteeType, PrivacyBudget
from tabpriv.errors import PrivacyParameterError, TabprivError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

if TYPE_CHECKING:
    from tabpriv.backends.vae.lipschitz_torch import LipschitzVAE

__all__ = ["PAPER_MODE_WARNING", "LipschitzVAEBackend", "gdp_delta", "gdp_epsilon", "gdp_mu"]

logger = logging.getLogger(__name__)

#: The sentence every paper-mode report carries.
PAPER_MODE_WARNING = (
    "per-record guarantee conditional on the trained model — not end-to-end differential privacy"
)


class PaperModeNotAllowedError(TabprivError, ValueError):
    """Paper mode was requested without the explicit ``allow_paper_mode=True`` flag."""


@dataclass(frozen=True)
class LipschitzNoise:
    """The noise parameters :meth:`LipschitzVAEBackend.fit` consumes (from the plan, public only).

    ``None`` marks a figure the configuration does not use (no reconstruction release, or paper mode's
    non-private training). :meth:`as_dict` gives the JSON-ready form saved as ``plan_``.
    """

    diameter: float
    encoder_noise: float
    mu: float | None = None
    eps_reconstruction: float | None = None
    delta_reconstruction: float | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    expected_batch: int | None = None
    eps_training: float | None = None
    delta_training: float | None = None
    pld_value_discretization_interval: float | None = None
    training_accountant: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The figures that are set, in a fixed order (the saved ``plan_``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


class LipschitzVAEBackend(Backend):
    """Lipschitz-constrained VAE with a fixed encoder noise scale (see the module docstring).

    Args:
        mode: ``"dp"`` (DP-SGD training, end-to-end DP) or ``"paper"`` (non-private training; needs
            ``allow_paper_mode=True``; guarantee conditional on the trained model).
        allow_paper_mode: Explicit opt-in to paper mode.
        lipschitz: Target Lipschitz constant ``L`` of the encoder mean (L2 -> L2).
        encoder_noise: Encoder noise scale ``s``. ``None``: calibrated so the per-record mechanism uses
            ``reconstruction_fraction`` of epsilon (all of it in paper mode).
        release: ``"prior"`` (decoded prior samples; dp mode only) or ``"reconstruction"`` (``K``
            decoded noisy codes of every training row).
        n_samples_per_record: ``K``.
        reconstruction_fraction: Share of (epsilon, delta) given to the per-record mechanism in dp mode
            with ``release="reconstruction"`` and ``encoder_noise=None``.
        enforcement: ``"spectral"`` (exact projection, certified) or ``"penalty"`` (finite-difference
            Lipschitz penalty; certifies nothing, so a reconstruction release becomes conditional).
        penalty_weight: Weight of the Lipschitz penalty.
        latent_dim, hidden, encoder_layers: Architecture.
        beta: Weight of the prior (KL) term.
        epochs, batch_size, lr: Training (``batch_size`` is the expected Poisson batch in dp mode).
        max_grad_norm: DP-SGD per-sample clipping norm.
        numeric_bins: Bins of each number's decoder head (a discretised likelihood, as in the other
            VAE backends: integers with at most 100 values, or this many if larger, get one bin per
            value, other numbers
            the schema's ``bins`` hint or this many equal-width bins, sampled uniformly within). ``0``
            keeps the regression head (tanh mean, no observation noise). The decoder is
            post-processing of the released codes, so this choice does not change the guarantee.
        threads: torch CPU threads for fit and sample (``None``: ``$TABPRIV_THREADS``, else 1; see
            ``docs/threads.md``). Set around each call and restored afterwards; no effect on the output.
        grad_sample_mode: How DP-SGD clips per-record gradients: ``"ghost"`` (ghost clipping: each
            record's gradient norm without the gradient itself, then one more backward pass; the
            default) or ``"hooks"`` (materialised per-record gradients, the mode of tabpriv before
            issue 18, whose outputs it reproduces bit for bit). Same sampler, noise multiplier, step
            count and guarantee; the trained weights differ by float rounding only.

    """

    name: ClassVar[str] = "lipschitz-vae"
    guarantee: ClassVar[GuaranteeType] = "conditional"  # worst case over modes; see effective_guarantee
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    summary: ClassVar[str] = (
        "Lipschitz-constrained VAE (Gross & Wunder): DP-SGD + certified encoder Lipschitz bound; "
        "paper mode (conditional guarantee) only with an explicit flag"
    )
    streaming: ClassVar[bool] = True

    #: Small settings for the conformance suite.
    quick_params: ClassVar[dict[str, Any]] = {"epochs": 2, "hidden": 16, "batch_size": 64}
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "mode": [Options(("dp", "paper"))],
        "allow_paper_mode": [Boolean()],
        "lipschitz": POSITIVE_NUMBER,
        "encoder_noise": [*POSITIVE_NUMBER, None],
        "release": [Options(("prior", "reconstruction"))],
        "n_samples_per_record": POSITIVE_INT,
        "reconstruction_fraction": OPEN_FRACTION,
        "enforcement": [Options(("spectral", "penalty"))],
        "penalty_weight": [Interval(float, 0, None, closed="left")],
        "latent_dim": POSITIVE_INT,
        "hidden": POSITIVE_INT,
        "encoder_layers": POSITIVE_INT,
        "beta": [Interval(float, 0, None, closed="left")],
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "max_grad_norm": POSITIVE_NUMBER,
        "numeric_bins": NUMERIC_BINS,
        "threads": [*POSITIVE_INT, None],
        "grad_sample_mode": [Options(GRAD_SAMPLE_MODES)],
    }

    def __init__(
        self,
        *,
        mode: str = "dp",
        allow_paper_mode: bool = False,
        lipschitz: float = 1.0,
        encoder_noise: float | None = None,
        release: str = "prior",
        n_samples_per_record: int = 1,
        reconstruction_fraction: float = 0.5,
        enforcement: str = "spectral",
        penalty_weight: float = 10.0,
        latent_dim: int = 8,
        hidden: int = 64,
        encoder_layers: int = 2,
        beta: float = 1.0,
        epochs: int = 10,
        batch_size: int = 256,
        lr: float = 1e-3,
        max_grad_norm: float = 1.0,
        numeric_bins: int = 20,
        threads: int | None = None,
        grad_sample_mode: str = "ghost",
    ) -> None:
        self.mode = mode
        self.allow_paper_mode = allow_paper_mode
        self.lipschitz = lipschitz
        self.encoder_noise = encoder_noise
        self.release = release
        self.n_samples_per_record = n_samples_per_record
        self.reconstruction_fraction = reconstruction_fraction
        self.enforcement = enforcement
        self.penalty_weight = penalty_weight
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.encoder_layers = encoder_layers
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.numeric_bins = numeric_bins
        self.threads = threads
        self.grad_sample_mode = grad_sample_mode

    # -- guarantee -------------------------------------------------------------------------------
    @property
    def effective_guarantee(self) -> GuaranteeType:
        """``"dp"`` for an end-to-end DP configuration, ``"conditional"`` otherwise."""
        if self.mode != "dp":
            return "conditional"
        if self.release == "reconstruction" and self.enforcement != "spectral":
            return "conditional"
        return "dp"

    # -- validation ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.mode == "paper" and self.allow_paper_mode is not True:
            raise PaperModeNotAllowedError(
                "mode='paper' trains on the private data without differential privacy: its guarantee "
                f"is a {PAPER_MODE_WARNING}. It runs only with the explicit flag "
                "allow_paper_mode=True (CLI: --paper-mode); got allow_paper_mode="
                f"{self.allow_paper_mode!r}. Use mode='dp' for end-to-end DP."
            )
        self.validate_params()
        if self.mode == "paper" and self.release != "reconstruction":
            raise PrivacyParameterError(
                "mode='paper' with release='prior' has no privacy guarantee at all (the model is "
                "trained non-privately); use release='reconstruction' or mode='dp'."
            )

    # -- planning (no data touched) ----------------------------------------------------------------
    def _plan(self, table: EncodedTable, eps: float, delta: float) -> dict[str, Any]:
        """The planned figures as a dict (what ``plan_`` holds after fit); benchmarks read it."""
        return self._noise(table.spans, table.n_rows, eps, delta).as_dict()

    def _noise(self, spans: tuple[ColumnSpan, ...], n_rows: int, eps: float, delta: float) -> LipschitzNoise:
        """Split the budget and calibrate every noise scale from public quantities only."""
        plan: dict[str, Any] = {}
        # Every row is clipped to row_norm_bound = sqrt(number of columns), data-independent.
        diameter = 2.0 * math.sqrt(len(spans))
        plan["diameter"] = diameter
        k = self.n_samples_per_record
        recon = self.release == "reconstruction"
        if recon:
            if self.mode == "paper":
                eps_r, delta_r = eps, delta
            else:
                eps_r, delta_r = eps * self.reconstruction_fraction, delta / 2
            if self.encoder_noise is None:
                s, mu, eps_rec = calibrate_gdp_noise(eps_r, delta_r, math.sqrt(k) * self.lipschitz * diameter)
            else:
                s = float(self.encoder_noise)
                mu = math.sqrt(k) * self.lipschitz * diameter / s
                eps_rec = gdp_epsilon(mu, delta_r)
            if eps_rec > eps_r:
                raise PrivacyParameterError(
                    f"The per-record mechanism with L={self.lipschitz:g}, D={diameter:.4g}, K={k}, "
                    f"s={s:.4g} is mu={mu:.4g}-GDP, i.e. epsilon={eps_rec:.4g} at delta={delta_r:g}, "
                    f"more than the {eps_r:.4g} available to it. Raise encoder_noise, lower lipschitz "
                    "or n_samples_per_record, or pass encoder_noise=None to calibrate it."
                )
            plan.update(encoder_noise=s, mu=mu, eps_reconstruction=eps_rec, delta_reconstruction=delta_r)
        else:
            s = float(self.encoder_noise) if self.encoder_noise is not None else 1.0
            plan["encoder_noise"] = s
            eps_rec, delta_r = 0.0, 0.0
        if self.mode == "dp":
            from tabpriv.backends.vae import dpsgd_loop

            eps_t = eps - eps_rec
            delta_t = delta - delta_r
            if eps_t <= 0:
                raise PrivacyParameterError(
                    f"No epsilon is left for training after the reconstruction spend of "
                    f"{eps_rec:.4g}; lower reconstruction_fraction or raise encoder_noise."
                )
            # The row count is public (replace-one); q and T are exactly what run_dpsgd executes.
            schedule = dpsgd_loop.dpsgd_schedule(n_rows, self.batch_size, self.epochs)
            cal = dpsgd_loop.calibrate_noise_multiplier(eps_t, delta_t, schedule)
            plan.update(
                noise_multiplier=cal.noise_multiplier,
                sample_rate=schedule.sampling_probability,
                steps=schedule.steps,
                expected_batch=schedule.expected_batch,
                eps_training=cal.epsilon,
                delta_training=delta_t,
                pld_value_discretization_interval=cal.value_discretization_interval,
                training_accountant=cal.accountant,
            )
        return LipschitzNoise(**plan)

    # -- plan ------------------------------------------------------------------------------------
    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Validate, split ``budget`` and calibrate: one spend (training) or two (+ reconstruction)."""
        self._check_params()
        noise = self._noise(spans, n_rows, budget.epsilon, budget.delta)
        plan = noise.as_dict()
        k = self.n_samples_per_record
        spends: list[PlannedSpend] = []
        if self.mode == "dp":
            spends.append(
                PlannedSpend(
                    "DP-SGD training of a Lipschitz-constrained VAE (Poisson sampling, per-sample "
                    "clipping, Gaussian noise)",
                    plan["eps_training"],
                    plan["delta_training"],
                    plan["training_accountant"],
                    {
                        "noise_multiplier": plan["noise_multiplier"],
                        "max_grad_norm": self.max_grad_norm,
                        "sample_rate": plan["sample_rate"],
                        "steps": plan["steps"],
                        "sampler": SAMPLER_TEXT,
                        "pld_value_discretization_interval": plan["pld_value_discretization_interval"],
                    },
                )
            )
        if self.release == "reconstruction":
            what = (
                "per-record Gaussian mechanism mu(x)+s*xi of a certified L-Lipschitz encoder"
                if self.mode == "dp"
                else f"paper mode: {PAPER_MODE_WARNING}"
            )
            spends.append(
                PlannedSpend(
                    f"{what}; K={k} noisy reconstructions per row",
                    plan["eps_reconstruction"],
                    plan["delta_reconstruction"],
                    "exact mu-GDP to (epsilon, delta) conversion (Dong, Roth & Su), replace-one",
                    {
                        "mu": plan["mu"],
                        "lipschitz_target": self.lipschitz,
                        "encoder_noise": plan["encoder_noise"],
                        "diameter": plan["diameter"],
                        "n_samples_per_record": k,
                    },
                )
            )
        return PrivacyPlan.build(self.name, tuple(spends), noise, spans=spans, n_rows=n_rows)

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> Backend:
        """Train and (optionally) encode rows with the planned (already paid) noise."""
        self.check_plan(plan, table)
        with torch_threads(resolve_threads(self.threads)):
            self._fit(table, plan, context)
        return self

    def _fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> None:
        noise: LipschitzNoise = plan.noise
        figures = noise.as_dict()
        k = self.n_samples_per_record
        # --- training -------------------------------------------------------------------------
        from tabpriv.backends.vae import lipschitz_torch as lt

        # Every row read (minibatch or release pass) is clipped to row_norm_bound, hence diameter <= D:
        # the rows of table.clipped_rows(), read on demand instead of materialised (streaming).
        data = lt.ClippedRows(table, table.row_norm_bound)
        heads = lt.Heads(table.spans, self.numeric_bins, DEFAULT_MAX_LEVELS)
        arch = lt.Arch(table.width, self.hidden, self.latent_dim, self.encoder_layers, heads.out_width)
        model = lt.build_model(arch, derive_seed(context.seed, "init"))
        s = float(figures["encoder_noise"])
        cfg = lt.TrainConfig(
            lipschitz=float(self.lipschitz),
            encoder_noise=s,
            prior_scale=math.sqrt(1.0 + s**2),
            beta=self.beta,
            enforcement=self.enforcement,
            penalty_weight=self.penalty_weight,
            epochs=self.epochs,
            batch_size=int(figures.get("expected_batch", min(self.batch_size, table.n_rows))),
            lr=self.lr,
            dp=self.mode == "dp",
            noise_multiplier=float(figures.get("noise_multiplier", 0.0)),
            max_grad_norm=self.max_grad_norm,
            grad_sample_mode=self.grad_sample_mode,
        )
        schedule = None
        if self.mode == "dp":
            from tabpriv.backends.vae import dpsgd_loop

            schedule = dpsgd_loop.dpsgd_schedule(table.n_rows, self.batch_size, self.epochs)
        info = lt.train(
            model,
            heads,
            data,
            cfg,
            context.seed,
            context.device,
            context.progress,
            schedule=schedule,
            sampler_rng=context.secret_rng("lipschitz-vae-poisson") if schedule else None,
            noise_rng=context.secret_rng("lipschitz-vae-gradient-noise") if schedule else None,
        )
        if schedule is not None and (info["steps"] != figures["steps"] or schedule.steps != figures["steps"]):
            raise TabprivError(  # pragma: no cover - run_dpsgd runs exactly schedule.steps
                f"DP-SGD ran {info['steps']} steps but {figures['steps']} were accounted."
            )
        product = lt.certified_lipschitz(model)
        if self.enforcement == "spectral":
            product = lt.enforce_certified_(model, float(self.lipschitz))
            if product > self.lipschitz:  # pragma: no cover - enforce_certified_ guarantees it
                raise TabprivError("certified Lipschitz bound exceeds its target")
        self.model_ = model
        self.heads_ = heads
        self.device_ = context.device
        self.layer_norms_ = lt.spectral_norms(model)
        self.lipschitz_bound_ = product
        self.plan_ = figures
        self.train_info_ = {"steps": int(info["steps"])}  # public: the accounted step count
        self.latents_: np.ndarray | None = None
        if self.release == "reconstruction":
            self.latents_ = lt.encode_noisy(
                model, data, s, k, context.secret_rng("lipschitz-vae-release"), context.device
            )
        self.seeded_ = context.seeded
        self.spans_ = table.spans
        self.integer_levels_ = DEFAULT_MAX_LEVELS
        logger.info(
            "lipschitz-vae fitted: %d steps, certified L=%.4g, noise multiplier %s",
            info["steps"], product, figures.get("noise_multiplier"),
        )  # fmt: skip

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> np.ndarray:
        """Decode prior samples, or ``n`` of the released noisy codes (post-processing only)."""
        self.check_fitted()
        if self.release == "prior":
            rng = np.random.default_rng(seed)
            tau = math.sqrt(1.0 + float(self.plan_["encoder_noise"]) ** 2)
            z = (tau * rng.standard_normal((n, self.latent_dim))).astype(np.float32)
            return self._decode(z, derive_seed(seed, "decode"))
        codes = self._released_codes()[self._released_code_order(n, seed)]
        return self._decode(codes, derive_seed(seed, "decode"))  # = block 0 of sample_chunks

    def sample_chunks(self, n: int, seed: int, chunk_rows: int) -> Iterator[np.ndarray]:
        """Blocks of :meth:`sample`; a reconstruction release draws its codes jointly.

        The released codes are drawn without replacement (while ``n`` does not exceed their number)
        across all blocks, exactly as one call of :meth:`sample` would, and decoded block by block.
        """
        if self.release == "prior":
            yield from super().sample_chunks(n, seed, chunk_rows)
            return
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive; got {chunk_rows}.")
        self.check_fitted()
        codes, order = self._released_codes(), self._released_code_order(n, seed)
        decode_seed = derive_seed(seed, "decode")
        for i, start in enumerate(range(0, n, chunk_rows)):
            yield self._decode(codes[order[start : start + chunk_rows]], block_seed(decode_seed, i))

    def _released_codes(self) -> np.ndarray:
        if self.latents_ is None:
            raise TabprivError("This release holds no noisy codes (release='prior').")
        return self.latents_

    def _released_code_order(self, n: int, seed: int) -> np.ndarray:
        """Indices of the released codes to decode: a permutation prefix, or with replacement if n > K."""
        rng = np.random.default_rng(seed)
        m = self._released_codes().shape[0]
        return rng.permutation(m)[:n] if n <= m else rng.integers(0, m, size=n)

    def _decode(self, z: np.ndarray, seed: int) -> np.ndarray:
        from tabpriv.backends.vae import lipschitz_torch as lt

        with torch_threads(resolve_threads(self.threads)):
            return lt.decode(self.model_, self.heads_, z, self.device_, seed)

    def to(self, device: str) -> LipschitzVAEBackend:
        """Decode on ``device`` from now on (a loaded backend samples on the CPU until moved)."""
        from tabpriv.backends.vae.dp2 import move_to

        self.check_fitted()
        self.model_.to(move_to(self, device))
        return self

    def encoder_mean(self, x: np.ndarray) -> np.ndarray:
        """The encoder mean on rows ``x`` (float64, CPU) — for checks of the Lipschitz bound."""
        self.check_fitted()
        from tabpriv.backends.vae import lipschitz_torch as lt

        return lt.encoder_mean(self.model_, x)

    # -- report ------------------------------------------------------------------------------------
    def privacy_details(self) -> PrivacyDetails:
        """Mechanism, accountants, noise, coverage and warnings of the fitted release."""
        self.check_fitted()
        p = self.plan_
        recon = self.release == "reconstruction"
        noise: dict[str, Any] = {
            "encoder_noise_s": p["encoder_noise"],
            "lipschitz_target": self.lipschitz,
            "lipschitz_bound": self.lipschitz_bound_,
            "lipschitz_bound_certified": self.enforcement == "spectral",
            "layer_spectral_norms": self.layer_norms_,
            "diameter_D": p["diameter"],
        }
        mech: list[str] = []
        covered: list[str] = []
        not_covered: list[str] = []
        warns: list[str] = []
        accountant: list[str] = []
        if self.mode == "dp":
            noise.update(
                noise_multiplier=p["noise_multiplier"],
                max_grad_norm=self.max_grad_norm,
                sample_rate=p["sample_rate"],
                steps=p["steps"],
            )
            mech.append(
                "DP-SGD training of encoder and decoder (per-record clipping, Poisson sampling, "
                "Gaussian noise; sampler and noise from secret ChaCha20 streams)"
            )
            accountant.append(str(p.get("training_accountant", "dp-accounting PLD, replace-one")))
            covered.append(
                f"training of encoder and decoder: ({p['eps_training']:.4g}, "
                f"{p['delta_training']:.3g})-DP under replace-one adjacency, accounted for exactly "
                f"the {p['steps']} Poisson-sampled steps at rate {p['sample_rate']:.4g} that ran"
            )
            if not recon:
                covered.append("decoded prior samples and the decoder (post-processing)")
        else:
            warns.append(PAPER_MODE_WARNING)
            warns.append(
                "paper mode: encoder and decoder are trained on the private rows without any "
                "privacy protection; run membership-inference attacks before releasing"
            )
            not_covered.append("training of encoder and decoder on the private data")
            not_covered.append("the decoder (released implicitly through the decoded rows)")
        if recon:
            noise.update(mu_gdp=p["mu"], n_samples_per_record=self.n_samples_per_record)
            mech.append(
                f"K={self.n_samples_per_record} noisy codes mu(x)+s*xi per row, decoded "
                f"(mu={p['mu']:.4g}-GDP with certified L)"
            )
            accountant.append("exact GDP -> (epsilon, delta) conversion (Dong, Roth & Su)")
            covered.append(
                f"each record's noisy reconstructions: ({p['eps_reconstruction']:.4g}, "
                f"{p['delta_reconstruction']:.3g}), replace-one, given the model"
            )
            if self.enforcement != "spectral":
                warns.append(
                    "Lipschitz constant enforced by a penalty: uncertified; the per-record "
                    f"guarantee assumes L={self.lipschitz:g} but the only certified bound is "
                    f"{self.lipschitz_bound_:.4g}"
                )
        if self.mode == "dp":
            covered.insert(
                0,
                "replace-one adjacency: the guarantee holds for any two tables with the same number of "
                "rows that differ in one record replaced by another; training and reconstruction "
                "spends are both accounted under it and add up (basic composition)",
            )
            not_covered.append(
                "the number of rows n, treated as public (replace-one adjacency; the sampling rate "
                "batch_size / n uses it)"
            )
        if self.seeded_:
            warns.append("seeded run: anyone who knows the seed can reproduce the noise")
        return PrivacyDetails(
            mechanism="; ".join(mech),
            adjacency="replace-one",
            accountant="; ".join(accountant),
            noise=noise,
            covered=covered,
            not_covered=not_covered,
            warnings=warns,
            extra={
                "mode": self.mode,
                "release": self.release,
                "effective_guarantee": self.effective_guarantee,
                "enforcement": self.enforcement,
                "train_steps": self.train_info_.get("steps"),
            },
        )

    # -- persistence ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Model weights (and released latent codes) as arrays; plan and spans as JSON."""
        self.check_fitted()
        from tabpriv.backends.vae import lipschitz_torch as lt

        arrays = lt.state_arrays(self.model_)
        if self.latents_ is not None:
            arrays["latents"] = self.latents_
        meta = {
            "width": int(self.spans_[-1].stop),
            "spans": [s.to_dict() for s in self.spans_],
            "plan": self.plan_,
            "lipschitz_bound": self.lipschitz_bound_,
            "layer_norms": self.layer_norms_,
            "train_info": self.train_info_,
            "seeded": self.seeded_,
            "integer_levels": self.integer_levels_,
        }
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`get_state` (on the CPU)."""
        from tabpriv.backends.vae import lipschitz_torch as lt

        spans = tuple(ColumnSpan.from_dict(d) for d in meta["spans"])
        # Files saved before the shared integer rule decode with the old one (0: exact up to numeric_bins).
        integer_levels = int(meta.get("integer_levels", 0))
        heads = lt.Heads(spans, self.numeric_bins, integer_levels)
        arch = lt.Arch(int(meta["width"]), self.hidden, self.latent_dim, self.encoder_layers, heads.out_width)
        model: LipschitzVAE = lt.build_model(arch, 0)
        lt.load_arrays(model, arrays)
        model.eval()
        self.model_ = model
        self.heads_ = heads
        self.device_ = "cpu"  # until to(device)
        self.plan_ = dict(meta["plan"])
        self.lipschitz_bound_ = float(meta["lipschitz_bound"])
        self.layer_norms_ = [float(v) for v in meta["layer_norms"]]
        self.train_info_ = {"steps": int(dict(meta.get("train_info", {})).get("steps", 0))}
        self.seeded_ = bool(meta["seeded"])
        self.latents_ = np.asarray(arrays["latents"], dtype=np.float32) if "latents" in arrays else None
        self.spans_ = spans
        self.integer_levels_ = integer_levels
