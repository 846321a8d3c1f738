"""Nothing computed from private data without noise leaves a fit (issue 13, item 4).

For every registered backend, a tiny table is fitted through the public :class:`~tabpriv.Synthesizer`
API (the backend's ``quick_params``), saved, and its save-file metadata and privacy report are read back.

(a) Every key of the backend's saved state, of its ledger parameters and of the report's ``noise`` and
    ``extra`` sections is on a reviewed allowlist (below, per backend). A new key fails this test until
    someone has checked that its value is public (a parameter, an accounting figure, a schema fact) or
    differentially private, and added it here with that reason.
(b) No key anywhere looks like a training figure or an exact count (loss, clipped, count, accuracy...)
    unless :data:`DOCUMENTED` says why its value is noisy or post-processing of the release; no text
    value states a loss or a clip count.
(c) With logging at DEBUG during fit and save, and with a progress callback, no log record or
    progress message mentions a loss, a clip count or a count.

The old ``lipschitz-vae`` saved ``train_info.final_loss`` (the mean of un-noised minibatch losses):
(a) and (b) fail on it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tabpriv import Synthesizer
from tabpriv.backends import available_backends, get_backend_class
from tabpriv.synthesizer import _META_KEY

from ..conftest import make_small_df, make_small_schema

#: Keys of the save file's top level and of the report's top level (the facade's, every backend).
COMMON_META = {
    "backend", "backend_params", "backend_state", "budget", "budget.delta", "budget.epsilon",
    "clip",  # whether clip=True was asked for (public), never how many values were clipped
    "columns", "device", "format", "format_version", "ledger", "ledger[].accountant", "ledger[].delta",
    "ledger[].epsilon", "ledger[].mechanism", "ledger[].parameters", "ledger[].timestamp",
    "library_version",
    "backend_choice",  # why this backend was used (backend='auto' reads the public spans only)
    "rows_in",  # n: public under replace-one adjacency (stated in every report)
    "schema", "seeded", "spans",
}  # fmt: skip
COMMON_REPORT = {
    "accountant", "adjacency", "backend", "budget_delta", "budget_epsilon", "covered", "delta",
    "end_to_end_dp", "epsilon", "extra", "guarantee", "guarantee_text", "headline", "library_version",
    "mechanism", "noise", "not_covered", "rows_in", "rows_out", "schema_source", "seeded", "spends",
    "spends[].accountant", "spends[].delta", "spends[].epsilon", "spends[].mechanism",
    "spends[].parameters", "spends[].timestamp", "timestamp", "warnings",
}  # fmt: skip

#: Reviewed keys per backend: ``state`` (backend_state.*), ``parameters`` (each ledger spend's
#: parameters), ``noise`` and ``extra`` (report sections). All are parameters, accounting figures or
#: functions of the released (noisy) state only.
ALLOWED: dict[str, dict[str, set[str]]] = {
    "independent": {
        # layouts: (n_bins, has_missing) per histogram, read off the public spans (histogram_layout)
        "state": {"accountant", "delta", "epsilon", "hardened", "layouts", "mechanism", "n_columns", "rho",
                  "sampler", "sensitivity", "sigma"},
        "parameters": {"adjacency", "l2_sensitivity", "n_cells", "n_histograms", "rho", "sampler", "sigma"},
        "noise": {"l2_sensitivity", "rho", "sampler", "sigma"},
        "extra": {"hardened_against_floating_point_attacks"},
    },
    "dp2-vae": {
        # integer_levels: the public one-bin-per-value width of integer heads (a constructor default)
        "state": {"accountant", "delta", "epsilon", "hist_multiplier", "integer_levels", "n_subsets",
                  "sigma"},
        "parameters": {"clip_norm", "l2_sensitivity_per_step", "n_subsets", "noise_std",
                       "sampling_probability", "sigma", "steps"},
        "noise": {"clip_norm", "l2_sensitivity_per_step", "n_subsets", "noise_multiplier_unit_sensitivity",
                  "noise_std", "sampling_probability", "sigma", "steps"},
        "extra": {"delta", "epsilon", "randomness"},
    },
    "dpsgd-vae": {
        # steps_executed: the loop's step count, equal to the accounted T (public)
        "state": {"accountant", "delta", "epsilon", "epsilon_add_remove", "hist_sigma", "noise_multiplier",
                  "sample_rate", "steps", "steps_executed", "integer_levels"},
        "parameters": {"clip_norm", "noise_multiplier", "pld_value_discretization_interval", "sampler",
                       "sampling_probability", "steps"},
        "noise": {"clip_norm", "noise_multiplier", "noise_source", "sampler", "sampling_probability",
                  "steps"},
        "extra": {"delta", "epsilon", "epsilon_add_remove_one", "steps_executed"},
    },
    "lipschitz-vae": {
        # layer_norms / lipschitz_bound: spectral norms of the DP-trained (then projected) weights:
        # post-processing of the DP release; train_info.steps: executed steps = accounted T (public)
        "state": {"layer_norms", "lipschitz_bound", "plan", "plan.delta_training", "plan.diameter",
                  "plan.encoder_noise", "plan.eps_training", "plan.expected_batch", "plan.noise_multiplier",
                  "plan.pld_value_discretization_interval", "plan.sample_rate", "plan.steps",
                  "plan.training_accountant", "seeded", "train_info", "train_info.steps", "width",
                  "integer_levels"},
        "parameters": {"max_grad_norm", "noise_multiplier", "pld_value_discretization_interval",
                       "sample_rate", "sampler", "steps"},
        "noise": {"diameter_D", "encoder_noise_s", "layer_spectral_norms", "lipschitz_bound",
                  "lipschitz_bound_certified", "lipschitz_target", "max_grad_norm", "noise_multiplier",
                  "sample_rate", "steps"},
        "extra": {"effective_guarantee", "enforcement", "mode", "release", "train_steps"},
    },
}  # fmt: skip
# mst / aim: noisy measurements (clique, sigma; aim's "coarse": the public group count of a coarsened
# measurement), the sampler's tables built from them (post-processing),
# the public schedule (noise scales, rounds, shares), the zCDP figures, the schema-only discretisation
# and which marginals were selected (outputs of the DP selections). n_rows is public (replace-one).
_MARGINAL_STATE = {
    "accountant",
    "delta",
    "epsilon",
    "hardened",
    "measurements",
    "measurements[].clique",
    "measurements[].sigma",
    "measurements[].coarse",
    "n_rows",
    "rho",
    "rho_spent",
    "sampler",
    "sampler.order",
    "sampler.parents",
    "sampler_text",
    "schedule",
    "selection_text",
}
_MARGINAL_EXTRA = {
    "hardened_against_floating_point_attacks",
    "selected_marginals",
    "discretisation",
    "discretisation[].name",
    "discretisation[].kind",
    "discretisation[].mode",
    "discretisation[].n_values",
    "discretisation[].has_missing",
    "discretisation[].int_levels",
}
_MST_SCHEDULE = {
    "n_columns",
    "rounds",
    "sigma_one_way",
    "sigma_two_way",
    "selection_scale",
    "selection_rho",
    "score_sensitivity",
    "target",
    "target_weight",
}
_AIM_SCHEDULE = {
    "n_columns",
    "rounds",
    "alpha",
    "sigma_initial",
    "selection_rho_initial",
    "workload_marginals",
    "degree",
    "target",
    "target_weight",
    "max_model_cells",
    "coarse_levels",
    "score_sensitivity",
}
for _name, _sched in (("mst", _MST_SCHEDULE), ("aim", _AIM_SCHEDULE)):
    ALLOWED[_name] = {
        "state": _MARGINAL_STATE | {f"schedule.{k}" for k in _sched},
        "parameters": {"adjacency", "marginal_l2_sensitivity", "rho", "sampler", "selection"} | _sched,
        "noise": {"rho", "rho_spent", "sampler", "selection", "measured_marginals", "sigmas"} | _sched,
        "extra": set(_MARGINAL_EXTRA),
    }
# pgd: the same noisy measurements and zCDP figures, its public schedule, and the particles (saved as an
# array: post-processing of the noisy marginals); no selection, no sampler tables.
_PGD_SCHEDULE = {
    "n_columns",
    "one_way_marginals",
    "two_way_marginals",
    "sigma",
    "sigma_target",
    "target",
    "target_weight",
    "n_particles",
    "steps",
}
ALLOWED["pgd"] = {
    "state": (_MARGINAL_STATE - {"sampler", "sampler.order", "sampler.parents", "selection_text"})
    | {f"schedule.{k}" for k in _PGD_SCHEDULE},
    "parameters": {"adjacency", "marginal_l2_sensitivity", "rho", "sampler", "selection"} | _PGD_SCHEDULE,
    "noise": {"rho", "rho_spent", "sampler", "measured_marginals", "sigmas"} | _PGD_SCHEDULE,
    "extra": set(_MARGINAL_EXTRA),
}
_SLICING = {
    "state": {"loss_final", "release", "release.accounting", "release.accounting.accountant",
              "release.accounting.adjacency", "release.accounting.alpha", "release.accounting.d",
              "release.accounting.delta", "release.accounting.epsilon",
              "release.accounting.epsilon_unamplified", "release.accounting.accountant_method",
              "release.accounting.epsilon_rdp",
              "release.accounting.k", "release.accounting.l2_sensitivity", "release.accounting.m",
              "release.accounting.n_projections", "release.accounting.n_rows", "release.accounting.seeded",
              "release.accounting.sigma", "release.k", "release.sigma"},
    "parameters": {"accountant", "accountant_method", "adjacency", "alpha", "d", "epsilon_rdp",
                   "epsilon_unamplified", "k", "l2_sensitivity", "m", "n_projections", "n_rows", "seeded",
                   "sigma"},
    "noise": {"d", "k", "l2_sensitivity", "m", "n_projections", "renyi_order", "sample_size", "sigma",
              "subsample_gamma"},
    "extra": {"accountant_method", "epsilon_rdp", "epsilon_unamplified", "randomness", "sensitivity_rule"},
}  # fmt: skip
ALLOWED["slicing"] = _SLICING
ALLOWED["slicing-wasserstein"] = _SLICING
for _allowed in ALLOWED.values():
    _allowed["extra"].add("backend_choice")  # the facade's: why this backend was used

#: Keys that look like training figures but whose values are noisy or post-processing, with the reason.
_SLICING_LOSS = (
    "the generator's final loss against the released noisy projections (XU + V): a function of the "
    "DP release only (post-processing), not of the private rows"
)
DOCUMENTED: dict[str, dict[str, str]] = {
    "slicing": {"state.loss_final": _SLICING_LOSS},
    "slicing-wasserstein": {"state.loss_final": _SLICING_LOSS},
}

#: Backends whose progress messages may state a loss, with the reason.
DOCUMENTED_PROGRESS_LOSS = {
    "slicing": _SLICING_LOSS + " (progress messages)",
    "slicing-wasserstein": _SLICING_LOSS + " (progress messages)",
}

#: A key name that looks like an un-noised training figure or an exact count.
SUSPICIOUS_KEY = re.compile(
    r"loss|clipped|(^|_)(n_)?counts?($|_)|accura|(^|_)acc($|_)|correct|(^|_)(mse|nll|elbo|recon_err)($|_)",
    re.I,
)
#: A text stating such a figure (a loss or clip count followed by a number).
SUSPICIOUS_TEXT = re.compile(r"\b(loss(es)?|clipped|n_clipped)\b\W{0,3}(=|:|of|was|is)?\W{0,3}-?\d", re.I)
#: Words that must not appear in tabpriv's own log lines and progress messages.
SUSPICIOUS_LOG = re.compile(r"\bloss(es)?\b|\bclipped\b|\bcounts?\b", re.I)


def _paths(obj: Any, prefix: str = "") -> set[str]:
    """Dotted key paths of nested dicts (lists as ``[]``); subtrees under a ``spans`` key are skipped."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.add(p)
            if k not in ("spans", "schema", "columns"):
                out |= _paths(v, p)
    elif isinstance(obj, list):
        for v in obj:
            out |= _paths(v, prefix + "[]")
    return out


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _read_meta(path: Path) -> dict[str, Any]:
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta: dict[str, Any] = json.loads(header["__metadata__"][_META_KEY])
    return meta


def _under(paths: set[str], prefix: str) -> set[str]:
    """Paths below ``prefix``; the column spans (public: from the declared schema) are left out."""
    return {
        p[len(prefix) + 1 :] for p in paths if p.startswith(prefix + ".") and p.rsplit(".", 1)[-1] != "spans"
    }


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every backend fitted once (quick params), saved; with its log records and progress messages."""
    out: dict[str, Any] = {}
    root = logging.getLogger()
    for name in available_backends():
        cls = get_backend_class(name)
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def __init__(self, sink: list[logging.LogRecord]) -> None:
                super().__init__(level=logging.DEBUG)
                self.sink = sink

            def emit(self, record: logging.LogRecord) -> None:
                self.sink.append(record)

        handler, old_level = Keep(records), root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        messages: list[str] = []
        try:
            synth = Synthesizer(
                epsilon=5.0,
                delta=1e-5,
                schema=make_small_schema(),
                backend=name,
                backend_params=dict(cls.quick_params),
                random_state=0,
                progress=lambda s, t, m, sink=messages: sink.append(str(m)),
            ).fit(make_small_df(300))
            path = tmp_path_factory.mktemp(name.replace("-", "_")) / "model.tabpriv"
            synth.save(path)
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
        out[name] = {
            "meta": _read_meta(path),
            "report": json.loads(synth.privacy_report.to_json()),
            "records": records,
            "messages": messages,
        }
    return out


def test_every_backend_is_reviewed() -> None:
    assert set(available_backends()) == set(ALLOWED), (
        "A backend without a reviewed allowlist of saved/reported keys: add it to ALLOWED."
    )


@pytest.mark.parametrize("name", available_backends())
def test_saved_and_reported_keys_are_allowlisted(name: str, fitted: dict[str, Any]) -> None:
    meta, report = fitted[name]["meta"], fitted[name]["report"]
    allowed = ALLOWED[name]
    meta_paths, report_paths = _paths(meta), _paths(report)
    top_meta = {p for p in meta_paths if not p.startswith(("backend_state.", "backend_params.", "ledger[]."))}
    assert top_meta - COMMON_META == set(), f"{name}: unreviewed save-file keys"
    assert _under(meta_paths, "backend_state") - allowed["state"] == set(), f"{name}: unreviewed state keys"
    params = _under(meta_paths, "ledger[].parameters") | _under(report_paths, "spends[].parameters")
    assert params - allowed["parameters"] == set(), f"{name}: unreviewed ledger parameters"
    top_report = {p for p in report_paths if not p.startswith(("noise.", "extra.", "spends[].parameters."))}
    assert top_report - COMMON_REPORT == set(), f"{name}: unreviewed report keys"
    assert _under(report_paths, "noise") - allowed["noise"] == set(), f"{name}: unreviewed report noise keys"
    assert _under(report_paths, "extra") - allowed["extra"] == set(), f"{name}: unreviewed report extras"
    # constructor arguments are saved as given: nothing learned hides in them
    cls = get_backend_class(name)
    assert meta["backend_params"] == json.loads(json.dumps(cls(**cls.quick_params).get_params()))


@pytest.mark.parametrize("name", available_backends())
def test_no_training_figure_or_count_unless_documented_noisy(name: str, fitted: dict[str, Any]) -> None:
    meta, report = fitted[name]["meta"], fitted[name]["report"]
    documented = DOCUMENTED.get(name, {})
    keys = {f"state.{p}" for p in _under(_paths(meta), "backend_state")}
    keys |= {p for p in _paths(meta) if not p.startswith("backend_state.")} | {
        f"report.{p}" for p in _paths(report)
    }
    flagged = {p for p in keys if SUSPICIOUS_KEY.search(p.rsplit(".", 1)[-1]) and p not in documented}
    assert flagged == set(), f"{name}: keys that look like un-noised training figures or exact counts"
    texts = [s for s in _strings(meta) + _strings(report) if SUSPICIOUS_TEXT.search(s)]
    assert texts == [], f"{name}: text that states a loss or a clip count"


@pytest.mark.parametrize("name", available_backends())
def test_no_loss_or_count_in_logs_or_progress(name: str, fitted: dict[str, Any]) -> None:
    records: list[logging.LogRecord] = fitted[name]["records"]
    ours = [r.getMessage() for r in records if r.name.startswith("tabpriv")]
    assert any(r.levelno <= logging.INFO for r in records if r.name.startswith("tabpriv"))  # captured
    assert [m for m in ours if SUSPICIOUS_LOG.search(m)] == [], f"{name}: log line with a loss or count"
    anyone = [r.getMessage() for r in records]
    assert [m for m in anyone if SUSPICIOUS_TEXT.search(m)] == [], f"{name}: a library logged a loss figure"
    msgs = [m for m in fitted[name]["messages"] if name not in DOCUMENTED_PROGRESS_LOSS or "loss" not in m]
    assert [m for m in msgs if SUSPICIOUS_LOG.search(m)] == [], (
        f"{name}: progress message with a loss or count"
    )
