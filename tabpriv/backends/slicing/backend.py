"""The ``slicing`` backend (Greenewald et al., NeurIPS 2024) and its ``slicing-wasserstein`` baseline.

Privacy is spent exactly once, on noisy random projections ``(U, XU + V)`` of the encoded table (see
:mod:`tabpriv.backends.slicing.mechanism` for the sensitivity and the accounting). The generator is
then trained on that release alone — post-processing — so it can be retrained with other
hyper-parameters at no privacy cost (:func:`retrain_from_release`). torch is imported lazily.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tabpriv._device import resolve_threads, torch_threads
from tabpriv.backends._params import Constraint, Interval, Options
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.backends.slicing.training import DIVERGENCES, ESTIMATORS
from tabpriv.budget import PrivacyBudget
from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

__all__ = ["SlicingBackend", "SlicingNoise", "SlicingWassersteinBackend", "retrain_from_release"]

_MECHANISM = "slicing mechanism: Gaussian random projections of the bounded rows plus Gaussian noise"


_POSITIVE_INT: list[Constraint | None] = [Interval(int, 1, None, closed="left")]


@dataclass(frozen=True)
class SlicingNoise:
    """The noise parameters :meth:`SlicingBackend.fit` consumes (from the plan, public only).

    Attributes:
        sigma: Noise standard deviation of every projected coordinate.
        k: Slice dimension.
        sample_size: Rows projected (``None``: every row).
        accounting: The accounting figures stored with the release (and recorded by the ledger).

    """

    sigma: float
    k: int
    sample_size: int | None
    accounting: dict[str, Any]


class SlicingBackend(Backend):
    """Slicing mechanism + generator trained on the smoothed-sliced divergence of the release.

    Args:
        n_slices: Number of slices ``m`` (``m' = m * k`` projections are released).
        k: Slice dimension.
        estimator: ``"mmd"`` (default, chosen by measurement), ``"rff"``, ``"kmm"`` (the paper's) or
            ``"swd"``; see :mod:`tabpriv.backends.slicing.training`.
        divergence: ``"kl"``, ``"js"`` or ``"pearson"`` (kmm / rff estimators).
        steps: Training steps.
        batch_size: Synthetic rows per step.
        real_batch: Released rows per step (kmm Gram matrices, rff ratio evaluation).
        slices_per_step: Slices per step (0 = all).
        lr: Adam learning rate.
        latent_dim: Generator noise dimension.
        hidden: Width of the residual blocks.
        n_blocks: Residual blocks.
        head: ``"gumbel"`` or ``"softmax"`` categorical head during training.
        n_features: Random Fourier features per slice.
        reg: Ridge ``tau`` of the kernel-mean-matching solve (kmm: ``K + tau * b_r * I``; rff:
            ``C + tau * I``). ``None``: the estimator's default (kmm: chosen by measurement, see
            docs/slicing.md; rff: 1e-2).
        chunk_rows: Rows per chunk when projecting (memory ``O(chunk_rows * m')``).
        subsample: Fraction ``gamma`` in (0, 1]: project only a uniformly random subset of exactly
            ``round(gamma * n)`` rows drawn without replacement, and account for it with the
            without-replacement amplification theorem under replace-one adjacency (Balle, Barthe &
            Gaboardi 2018, Theorem 9). ``None`` (default): every row is projected.
        threads: torch CPU threads for fit and sample (``None``: ``$TABPRIV_THREADS``, else 1; see
            ``docs/threads.md``). Set around each call and restored afterwards; no effect on the output.

    """

    name = "slicing"
    guarantee = "dp"
    #: Reads the table only through :meth:`EncodedTable.iter_chunks`.
    streaming: ClassVar[bool] = True
    devices = ("cpu", "cuda")
    summary = (
        "Slicing mechanism (noisy random projections, privacy spent once) + generator trained on the "
        "smoothed-sliced divergence; retrainable from the release at no privacy cost."
    )
    quick_params: ClassVar[dict[str, Any]] = {
        "n_slices": 8,
        "steps": 10,
        "batch_size": 64,
        "real_batch": 32,
        "hidden": 32,
        "latent_dim": 8,
        "n_features": 16,
    }
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "n_slices": _POSITIVE_INT,
        "k": _POSITIVE_INT,
        "estimator": [Options(ESTIMATORS)],
        "divergence": [Options(DIVERGENCES)],
        "steps": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "real_batch": _POSITIVE_INT,
        "slices_per_step": [Interval(int, 0, None, closed="left")],
        "lr": [Interval(float, 0, None, closed="neither")],
        "latent_dim": _POSITIVE_INT,
        "hidden": _POSITIVE_INT,
        "n_blocks": [Interval(int, 0, None, closed="left")],
        "head": [Options(("gumbel", "softmax"))],
        "n_features": _POSITIVE_INT,
        "reg": [Interval(float, 0, None, closed="neither"), None],
        "chunk_rows": _POSITIVE_INT,
        "subsample": [Interval(float, 0, 1, closed="right"), None],
        "threads": [*_POSITIVE_INT, None],
    }

    def __init__(
        self,
        *,
        n_slices: int = 256,
        k: int = 2,
        estimator: str = "mmd",
        divergence: str = "kl",
        steps: int = 60,
        batch_size: int = 512,
        real_batch: int = 256,
        slices_per_step: int = 0,
        lr: float = 2e-3,
        latent_dim: int = 64,
        hidden: int = 256,
        n_blocks: int = 2,
        head: str = "gumbel",
        n_features: int = 96,
        reg: float | None = None,
        chunk_rows: int = 8192,
        subsample: float | None = None,
        threads: int | None = None,
    ) -> None:
        self.n_slices = n_slices
        self.k = k
        self.estimator = estimator
        self.divergence = divergence
        self.steps = steps
        self.batch_size = batch_size
        self.real_batch = real_batch
        self.slices_per_step = slices_per_step
        self.lr = lr
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.n_blocks = n_blocks
        self.head = head
        self.n_features = n_features
        self.reg = reg
        self.chunk_rows = chunk_rows
        self.subsample = subsample
        self.threads = threads

    # -- helpers ---------------------------------------------------------------------------------
    def _k(self) -> int:
        return int(self.k)

    def _sample_size(self, n_rows: int) -> tuple[int | None, float | None]:
        """``(m, m/n)`` for the subsample, ``(None, None)`` without subsampling."""
        g = self.subsample
        if g is None:
            return None, None
        m = round(float(g) * n_rows)
        if m < 1:
            raise PrivacyParameterError(
                f"subsample={g!r} of {n_rows} rows selects no row; use a larger fraction."
            )
        return m, m / n_rows

    def _train_config(self) -> Any:
        from tabpriv.backends.slicing.training import DEFAULT_REG, TrainConfig

        self.validate_params()
        reg = DEFAULT_REG.get(self.estimator, 1e-2) if self.reg is None else self.reg
        return TrainConfig(
            estimator=self.estimator,
            divergence=self.divergence,
            steps=self.steps,
            batch_size=self.batch_size,
            real_batch=self.real_batch,
            slices_per_step=self.slices_per_step,
            lr=float(self.lr),
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            n_blocks=self.n_blocks,
            head=self.head,
            n_features=self.n_features,
            reg=float(reg),
        )

    # -- fitting ---------------------------------------------------------------------------------
    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Calibrate sigma to ``budget`` from the public spans and row count (no data read)."""
        from tabpriv.backends.slicing.mechanism import (
            ACCOUNTANT,
            WOR_THEOREM,
            block_sensitivity,
            calibrate_sigma,
        )

        self.validate_params()
        k = self._k()
        self._train_config()
        d = spans[-1].stop if spans else 0
        m_prime = self.n_slices * k
        delta_sens = block_sensitivity(spans)
        sample_size, gamma = self._sample_size(n_rows)
        cal = calibrate_sigma(budget.epsilon, budget.delta, d, m_prime, delta_sens, gamma)
        accounting: dict[str, Any] = {
            "epsilon": cal.epsilon,
            "delta": cal.delta,
            "alpha": cal.alpha,
            "sigma": cal.sigma,
            "l2_sensitivity": delta_sens,
            "adjacency": "replace-one",
            "d": d,
            "m": self.n_slices,
            "k": k,
            "n_projections": m_prime,
            "n_rows": n_rows,
            "accountant": ACCOUNTANT,
            "seeded": seeded,
            "epsilon_unamplified": cal.epsilon_unamplified,
            # Public: computed from (sigma, d, m', Delta, gamma, delta) only.
            "accountant_method": cal.method,
            "epsilon_rdp": cal.epsilon_rdp,
        }
        if gamma is not None:
            accounting["accountant"] = (
                ACCOUNTANT + "; amplified by sampling without replacement (Balle, Barthe & Gaboardi, "
                "NeurIPS 2018, Theorem 9)"
            )
            accounting["subsampling"] = {
                "scheme": (
                    "uniform without replacement: a random subset of exactly sample_size rows, "
                    "released in random order (n public, replace-one adjacency)"
                ),
                "gamma_requested": float(self.subsample),  # type: ignore[arg-type]
                "gamma": gamma,
                "sample_size": sample_size,
                "n_rows": n_rows,
                "epsilon_base": cal.epsilon_base,
                "delta_base": cal.delta_base,
                "theorem": WOR_THEOREM,
            }
        spend = PlannedSpend(
            mechanism=_MECHANISM,
            epsilon=cal.epsilon,
            delta=cal.delta,
            accountant=accounting["accountant"],
            parameters={kk: v for kk, v in accounting.items() if kk not in ("epsilon", "delta")},
        )
        noise = SlicingNoise(sigma=cal.sigma, k=k, sample_size=sample_size, accounting=accounting)
        return PrivacyPlan.build(self.name, (spend,), noise, spans=spans, n_rows=n_rows)

    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> Backend:
        """Release the planned noisy projections (the plan is paid for), then train on them."""
        self.check_plan(plan, table)
        with torch_threads(resolve_threads(self.threads)):
            self._fit(table, plan, context)
        return self

    def _fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> None:
        from tabpriv.backends.slicing.mechanism import privatise

        noise: SlicingNoise = plan.noise
        cfg = self._train_config()
        k = noise.k
        accounting = dict(noise.accounting)
        sample_size = noise.sample_size
        from tabpriv._random import derive_seed

        # U is released: public seed (the same U as before for the same seed). The noise V and the
        # secret row sample come from a ChaCha20 stream keyed independently of that seed.
        release = privatise(
            table,
            sigma=noise.sigma,
            n_slices=self.n_slices,
            k=k,
            seed=derive_seed(context.seed, "slicing-noise"),
            accounting=accounting,
            chunk_rows=self.chunk_rows,
            sample_size=sample_size,
            secret_rng=context.secret_rng("slicing-noise"),
            device=context.device,
        )
        self._train(release, cfg, context.device, derive_seed(context.seed, "slicing-train"), context)

    def _train(
        self, release: Any, cfg: Any, device: str, seed: int, context: FitContext | None = None
    ) -> None:
        from tabpriv.backends.slicing.training import train_generator

        with torch_threads(resolve_threads(self.threads)):
            weights, history = train_generator(
                release,
                cfg,
                device=device,
                seed=seed,
                progress=context.progress if context is not None else None,
            )
        release.device_tensors.clear()  # the host copy is kept; free the device's
        self.release_ = release
        self.weights_ = weights
        self.loss_history_ = history
        self.device_ = device
        self.spans_ = release.spans

    def to(self, device: str) -> SlicingBackend:
        """Sample on ``device`` from now on (``"auto"``, ``"cpu"``, ``"cuda[:N]"``).

        A fitted backend samples on the device it was fitted on; a loaded one on the CPU until moved
        (e.g. after :meth:`Synthesizer.load <tabpriv.Synthesizer.load>`). Sampling is post-processing:
        the device changes where the draws run, never what they may reveal.

        Raises:
            DeviceError: The device is unknown, or is a GPU and none is available.

        """
        from tabpriv._device import resolve_device

        self.device_ = resolve_device(device, self.devices)
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` encoded rows (one-hot categories, 0/1 indicators, numbers in [-1, 1]).

        The generator runs on ``device_`` (the fit's device, or the one given to :meth:`to`).
        """
        from tabpriv.backends.slicing.training import sample_rows

        self.check_fitted()
        with torch_threads(resolve_threads(self.threads)):
            return sample_rows(self.spans_, self._train_config(), self.weights_, int(n), seed, self.device_)

    # -- reporting -------------------------------------------------------------------------------
    def privacy_details(self) -> PrivacyDetails:
        """Mechanism, accountant, noise and coverage of the release."""
        self.check_fitted()
        acc = self.release_.accounting
        sub = acc.get("subsampling")
        mech = _MECHANISM + " (one release; training is post-processing)"
        extra: dict[str, Any] = {
            "epsilon_unamplified": acc.get("epsilon_unamplified", acc.get("epsilon")),
            "accountant_method": acc.get("accountant_method", "exact"),
            "epsilon_rdp": acc.get("epsilon_rdp"),
            "sensitivity_rule": "sqrt(2*softmax blocks + 4*number coords + 1*missing indicators)",
            "randomness": (
                "U: public PCG64 stream of the run's seed (it is released); V and any row sample: a "
                "separate secret ChaCha20 stream (randomgen), 256-bit OS-entropy key unless seeded"
            ),
        }
        if sub is not None:
            mech = (
                f"{_MECHANISM} on a uniformly random subset of {sub['sample_size']} of "
                f"{sub['n_rows']} rows drawn without replacement (gamma = {sub['gamma']:.6g}); one "
                "release, training is post-processing"
            )
            extra.update(
                {
                    "subsampling": dict(sub),
                    "epsilon_amplified": acc.get("epsilon"),
                    "amplification": (
                        f"epsilon {acc.get('epsilon'):.4g} (amplified by subsampling, the guarantee) vs "
                        f"{acc.get('epsilon_unamplified'):.4g} for the same sigma on all rows "
                        f"(un-amplified), delta {acc.get('delta'):.3g}; see 'theorem'"
                    ),
                }
            )
        not_cov = [
            "the number of rows n, treated as public (replace-one adjacency)",
            "side channels: floating-point noise sampling (Mironov 2012) is not hardened",
        ]
        if sub is None:
            not_cov.insert(1, "no subsampling amplification is claimed (the full table is projected)")
        return PrivacyDetails(
            mechanism=mech,
            adjacency="replace-one",
            accountant=str(acc.get("accountant", "")),
            noise={
                "sigma": acc.get("sigma"),
                "l2_sensitivity": acc.get("l2_sensitivity"),
                "m": acc.get("m"),
                "k": acc.get("k"),
                "d": acc.get("d"),
                "n_projections": acc.get("n_projections"),
                "renyi_order": acc.get("alpha"),
                "subsample_gamma": None if sub is None else sub["gamma"],
                "sample_size": None if sub is None else sub["sample_size"],
            },
            covered=[
                "the released projections (U, XU + V), the generator trained on them and every table "
                "sampled from it, including any later retraining on the saved release",
                "the encoding (the schema is public and costs nothing)",
            ],
            not_covered=not_cov,
            extra=extra,
        )

    # -- persistence -----------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Generator weights and the release (arrays) plus metadata."""
        self.check_fitted()
        arrays, rmeta = self.release_.to_arrays()
        arrays.update({f"gen.{k}": v for k, v in self.weights_.items()})
        return arrays, {"release": rmeta, "loss_final": self.loss_history_[-1:]}

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output."""
        from tabpriv.backends.slicing.mechanism import SlicingRelease

        self.release_ = SlicingRelease.from_arrays(arrays, meta["release"])
        self.weights_ = {k[4:]: np.asarray(v) for k, v in arrays.items() if k.startswith("gen.")}
        self.loss_history_ = [float(x) for x in meta.get("loss_final", [])]
        self.device_ = "cpu"  # until to(device)
        self.spans_ = self.release_.spans

    def save_release(self, path: str | Path) -> None:
        """Save the release alone (``U``, ``XU + V``, sigma, accounting) for later retraining."""
        self.check_fitted()
        self.release_.save(path)


class SlicingWassersteinBackend(SlicingBackend):
    """The paper's SliceWass baseline: ``k = 1`` slices, sorted 1-D Wasserstein loss.

    Same mechanism and accounting as :class:`SlicingBackend`; only the training loss differs.
    """

    name = "slicing-wasserstein"
    streaming: ClassVar[bool] = True
    summary = "Slicing mechanism + generator trained on the sliced 1-D Wasserstein distance (baseline)."
    quick_params: ClassVar[dict[str, Any]] = {
        "n_slices": 16,
        "steps": 10,
        "batch_size": 64,
        "hidden": 32,
        "latent_dim": 8,
    }

    def __init__(
        self,
        *,
        n_slices: int = 128,
        k: int = 1,
        estimator: str = "swd",
        divergence: str = "kl",
        steps: int = 300,
        batch_size: int = 512,
        real_batch: int = 256,
        slices_per_step: int = 0,
        lr: float = 2e-3,
        latent_dim: int = 64,
        hidden: int = 256,
        n_blocks: int = 2,
        head: str = "gumbel",
        n_features: int = 96,
        reg: float | None = None,
        chunk_rows: int = 8192,
        subsample: float | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(
            n_slices=n_slices,
            k=k,
            estimator=estimator,
            divergence=divergence,
            steps=steps,
            batch_size=batch_size,
            real_batch=real_batch,
            slices_per_step=slices_per_step,
            lr=lr,
            latent_dim=latent_dim,
            hidden=hidden,
            n_blocks=n_blocks,
            head=head,
            n_features=n_features,
            reg=reg,
            chunk_rows=chunk_rows,
            subsample=subsample,
            threads=threads,
        )

    def _k(self) -> int:
        if self.k != 1 or self.estimator != "swd":
            raise PrivacyParameterError(
                f"slicing-wasserstein uses k=1 and estimator='swd'; got k={self.k!r}, "
                f"estimator={self.estimator!r}. Use the 'slicing' backend for other settings."
            )
        return 1


def retrain_from_release(
    release: str | Path | Any,
    *,
    backend: str = "slicing",
    device: str = "cpu",
    seed: int | None = None,
    **params: Any,
) -> SlicingBackend:
    """Train a new generator on a saved release: no private table, no ledger, no privacy spent.

    Args:
        release: A :class:`SlicingRelease` or the path of one saved with ``save_release``.
        backend: ``"slicing"`` or ``"slicing-wasserstein"``.
        device: Torch device.
        seed: Training seed (OS entropy when ``None``).
        **params: Backend hyper-parameters (``steps``, ``estimator``, ...). ``n_slices`` and ``k``
            are taken from the release.

    Returns:
        A fitted backend whose :meth:`~SlicingBackend.sample` works as after ``fit``.

    """
    from tabpriv.backends.slicing.mechanism import SlicingRelease

    rel = release if isinstance(release, SlicingRelease) else SlicingRelease.load(release)
    cls = SlicingWassersteinBackend if backend == "slicing-wasserstein" else SlicingBackend
    params = {kk: v for kk, v in params.items() if kk not in ("n_slices", "k", "subsample")}
    sub = rel.accounting.get("subsampling")
    if sub is not None:
        params["subsample"] = sub.get("gamma_requested", sub.get("gamma"))
    b = cls(n_slices=rel.n_slices, k=rel.k, **params)
    b._k()
    s = secrets.randbits(128) if seed is None else int(seed)
    b._train(rel, b._train_config(), device, s)
    return b
