"""The one place for tabpriv's privacy math (replace-one adjacency everywhere).

Modules (each imports dp-accounting / OpenDP / scipy only inside its functions, so ``import tabpriv``
stays light):

* :mod:`~tabpriv.accounting.calibrate` -- the one noise calibration (:func:`calibrate`);
* :mod:`~tabpriv.accounting.interface` -- the accountant interface: frozen mechanism descriptions with
  ``epsilon(delta)`` and an :class:`AccountantInfo`; the :data:`Adjacency` type;
* :mod:`~tabpriv.accounting.gaussian` -- the analytic Gaussian mechanism (dp-accounting);
* :mod:`~tabpriv.accounting.zcdp` -- zCDP and the discrete Gaussian (CKS 2020; OpenDP);
* :mod:`~tabpriv.accounting.dpsgd` -- DP-SGD: Poisson-subsampled Gaussian, replace-one PLD;
* :mod:`~tabpriv.accounting.slicing` -- the slicing mechanism: exact privacy profile and RDP curve;
* :mod:`~tabpriv.accounting.subsampling` -- amplification by sampling without replacement;
* :mod:`~tabpriv.accounting.gdp` -- Gaussian differential privacy;
* :mod:`~tabpriv.accounting.dp2vae` -- DP²-VAE's 1-of-K sampled Gaussian steps (RDP).
"""

from __future__ import annotations

from tabpriv.accounting.calibrate import Calibration, calibrate
from tabpriv.accounting.dp2vae import (
    DP2VAE_RDP_ORDERS,
    DP2VAECalibration,
    calibrate_dp2vae_noise,
    dp2vae_accountant_text,
    dp2vae_epsilon,
    dp2vae_epsilon_curve,
    dp2vae_event,
)
from tabpriv.accounting.dpsgd import (
    DPSGD_ADJACENCIES,
    DPSGD_CALIBRATION_RTOL,
    OPACUS_ALPHAS,
    DPSGDCalibration,
    calibrate_dpsgd,
    dpsgd_accountant_text,
    dpsgd_epsilon,
    dpsgd_pld_interval,
    opacus_epsilon,
    opacus_version,
    replace_one_from_add_remove,
)
from tabpriv.accounting.gaussian import (
    DP_ACCOUNTING_VERSION,
    GaussianCalibration,
    calibrate_gaussian,
    gaussian_epsilon,
)
from tabpriv.accounting.gdp import calibrate_gdp_noise, gdp_delta, gdp_epsilon, gdp_mu
from tabpriv.accounting.interface import (
    ADJACENCIES,
    AccountantInfo,
    Adjacency,
    DiscreteGaussian,
    DP2VAEMechanism,
    GaussianMechanism,
    GDPMechanism,
    Mechanism,
    PoissonGaussianDPSGD,
    SlicingMechanism,
    check_adjacency,
)
from tabpriv.accounting.slicing import (
    SLICING_EXACT_ACCOUNTANT,
    SLICING_PROFILE_CELLS,
    SLICING_RDP_ACCOUNTANT,
    rdp_to_dp,
    slicing_epsilon,
    slicing_profile_delta,
    slicing_profile_epsilon,
    slicing_rdp,
)
from tabpriv.accounting.subsampling import WOR_THEOREM, amplify_wor, deamplify_wor
from tabpriv.accounting.zcdp import (
    MAX_DISCRETE_GAUSSIAN_EPSILON,
    OPENDP_VERSION,
    ZCDP_CONVERSION,
    DiscreteGaussianCalibration,
    calibrate_discrete_gaussian,
    discrete_gaussian_rho,
    opendp_discrete_gaussian_epsilon,
    zcdp_epsilon,
    zcdp_rho_for,
)
from tabpriv.budget import check_delta, check_epsilon

__all__ = [
    "ADJACENCIES",
    "DP2VAE_RDP_ORDERS",
    "DPSGD_ADJACENCIES",
    "DPSGD_CALIBRATION_RTOL",
    "DP_ACCOUNTING_VERSION",
    "MAX_DISCRETE_GAUSSIAN_EPSILON",
    "OPACUS_ALPHAS",
    "OPENDP_VERSION",
    "SLICING_EXACT_ACCOUNTANT",
    "SLICING_PROFILE_CELLS",
    "SLICING_RDP_ACCOUNTANT",
    "WOR_THEOREM",
    "ZCDP_CONVERSION",
    "AccountantInfo",
    "Adjacency",
    "Calibration",
    "DP2VAECalibration",
    "DP2VAEMechanism",
    "DPSGDCalibration",
    "DiscreteGaussian",
    "DiscreteGaussianCalibration",
    "GDPMechanism",
    "GaussianCalibration",
    "GaussianMechanism",
    "Mechanism",
    "PoissonGaussianDPSGD",
    "SlicingMechanism",
    "amplify_wor",
    "calibrate",
    "calibrate_discrete_gaussian",
    "calibrate_dp2vae_noise",
    "calibrate_dpsgd",
    "calibrate_gaussian",
    "calibrate_gdp_noise",
    "check_adjacency",
    "check_delta",
    "check_epsilon",
    "deamplify_wor",
    "discrete_gaussian_rho",
    "dp2vae_accountant_text",
    "dp2vae_epsilon",
    "dp2vae_epsilon_curve",
    "dp2vae_event",
    "dpsgd_accountant_text",
    "dpsgd_epsilon",
    "dpsgd_pld_interval",
    "gaussian_epsilon",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "opacus_epsilon",
    "opacus_version",
    "opendp_discrete_gaussian_epsilon",
    "rdp_to_dp",
    "replace_one_from_add_remove",
    "slicing_epsilon",
    "slicing_profile_delta",
    "slicing_profile_epsilon",
    "slicing_rdp",
    "zcdp_epsilon",
    "zcdp_rho_for",
]
