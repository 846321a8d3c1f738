"""The :func:`evaluate` entry point: marginals, utility, membership inference, SDMetrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.errors import DataValidationError, SchemaError
from tabpriv.evaluation.discretize import (
    Codes,
    discretize,
    encode_features,
    level_labels,
    row_hashes,
)
from tabpriv.evaluation.marginals import marginal_tvds
from tabpriv.evaluation.membership import attack_sizes, exact_match_rates, run_attacks
from tabpriv.evaluation.report import FLOOR_NOTE, EvaluationReport
from tabpriv.evaluation.verdict import verdict
from tabpriv.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EVALUATION_PHASES", "PHASE_WEIGHTS", "ProgressFn", "evaluate"]

#: ``progress(phase, done, total)``: called when each phase of :func:`evaluate` starts, at each step of
#: the floor phase, and once at the end with ``("done", total, total)``. ``done`` and ``total`` count
#: units of estimated work (:data:`PHASE_WEIGHTS`), so an ETA computed from them follows the work, not
#: the number of phases.
ProgressFn = Callable[[str, int, int], None]

#: The phases of :func:`evaluate`, in order (those that do not run are left out of ``total``).
EVALUATION_PHASES = ("discretize", "marginals", "utility", "membership", "sdmetrics", "floor")

#: Relative cost of each phase, the unit of the progress callback: wall seconds of one Adult evaluation
#: (32,561 training and 16,281 hold-out rows, 15 columns, target ``income``, SDMetrics on, a floor),
#: rounded up. The floor phase repeats the other four on the floor table and weighs what it repeats.
#: Utility grows with the rows, membership with the attacked rows (at most 2,000), SDMetrics with both.
PHASE_WEIGHTS = {"discretize": 1, "marginals": 5, "utility": 5, "membership": 18, "sdmetrics": 28}

logger = logging.getLogger(__name__)

#: Categorical columns with more levels than this are plotted as their most frequent levels.
MAX_PLOT_LEVELS = 12


def _check_frame(df: Any, what: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"The {what} table must be a pandas DataFrame; got {type(df).__name__}.")


def _check_columns(df: pd.DataFrame, schema: Schema, what: str) -> None:
    missing, extra = schema.column_mismatch(df.columns)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"not in the schema: {', '.join(map(repr, extra))}")
        raise DataValidationError(
            f"The {what} table's columns differ from the schema and the real table ("
            + "; ".join(parts)
            + "). Both tables must have the schema's columns."
        )


def _check_kinds(df: pd.DataFrame, schema: Schema, codes: Codes, what: str) -> None:
    """Raise when a whole column of ``df`` has another kind than the schema says."""
    import pandas as pd

    for j, col in enumerate(schema.columns):
        s = df[col.name]
        present = s.notna().to_numpy()
        if not present.any():
            continue
        all_out = bool((codes.codes[present, j] == codes.levels[j].out_code).all())
        if not all_out:
            continue
        numeric_dtype = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if col.kind != "categorical" and not numeric_dtype:
            raise DataValidationError(
                f"Column {col.name!r} is {col.kind} in the schema but the {what} table holds "
                f"{s.dtype} values that are not numbers (e.g. {s.dropna().iloc[0]!r}); the "
                "tables must have the same column kinds."
            )
        if (
            col.kind == "categorical"
            and numeric_dtype
            and all(isinstance(c, str) for c in col.categories or ())
        ):
            raise DataValidationError(
                f"Column {col.name!r} is categorical in the schema but the {what} table holds "
                f"numbers (e.g. {s.dropna().iloc[0]!r}) none of which is a declared category; the "
                "tables must have the same column kinds."
            )


def _distributions(schema: Schema, real: Codes, synth: Codes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for j, (col, lv) in enumerate(zip(schema.columns, real.levels, strict=True)):
        r = np.bincount(real.codes[:, j], minlength=lv.n_levels).astype(float)
        s = np.bincount(synth.codes[:, j], minlength=lv.n_levels).astype(float)
        r /= max(r.sum(), 1.0)
        s /= max(s.sum(), 1.0)
        labels = level_labels(col, lv)
        keep = [k for k in range(lv.n_levels) if k < lv.n_values or r[k] > 0 or s[k] > 0]
        out[col.name] = {
            "kind": col.kind,
            "labels": [labels[k] for k in keep],
            "real": [float(r[k]) for k in keep],
            "synthetic": [float(s[k]) for k in keep],
        }
    return out


def _privacy_dict(privacy_report: Any) -> dict[str, Any] | None:
    if privacy_report is None:
        return None
    if isinstance(privacy_report, Mapping):
        return dict(privacy_report)
    to_dict = getattr(privacy_report, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise DataValidationError(
        f"privacy_report must be a PrivacyReport or a dict; got {type(privacy_report).__name__}."
    )


def _floor_results(
    floor: pd.DataFrame,
    floor_info: Mapping[str, Any] | None,
    schema: Schema,
    bins: int,
    max_triples: int,
    random_state: int,
    real: pd.DataFrame,
    real_codes: Codes,
    hold: pd.DataFrame | None,
    target: str | None,
    hgb: bool,
    attack: dict[str, Any] | None,
    sdmetrics: bool,
    step: Callable[[int], None] = lambda work: None,
) -> dict[str, Any]:
    """The floor table's figures, computed as the release's (marginals, utility, attacks, SDMetrics).

    ``step(work)`` is called after each part with the :data:`PHASE_WEIGHTS` units it took.
    """
    codes = discretize(floor, schema, bins)
    _check_kinds(floor, schema, codes, "floor")
    mg = marginal_tvds(real_codes, codes, max_triples=max_triples, random_state=random_state)
    out: dict[str, Any] = {
        "note": FLOOR_NOTE,
        **{k: v for k, v in (floor_info or {}).items() if k != "note"},
        "n_rows": len(floor),
        "marginals": {
            k: {"mean": mg[k]["mean"], "max": mg[k]["max"]} for k in ("one_way", "two_way", "three_way")
        },
    }
    step(PHASE_WEIGHTS["discretize"] + PHASE_WEIGHTS["marginals"])
    if target is not None and hold is not None:
        from tabpriv.evaluation.utility import utility_scores

        u = utility_scores(real, floor, hold, schema, target, hgb=hgb, random_state=random_state)
        out["utility"] = {name: m["synthetic"] for name, m in u["models"].items()}
        if u["notes"]:
            out["utility_notes"] = [n for n in u["notes"] if "synthetic" in n]
        step(PHASE_WEIGHTS["utility"])
    if attack is not None:
        f_floor = encode_features(floor, schema, codes)
        res = run_attacks(
            attack["members"], attack["non_members"], attack["reference"], f_floor, random_state=random_state
        )
        out["membership"] = {
            k: {f: a[f] for f in ("auc", "tpr_at_fpr_1pct", "tpr_at_fpr_0.1pct")} for k, a in res.items()
        }
    step(PHASE_WEIGHTS["membership"])
    if sdmetrics:
        from tabpriv.evaluation.sdm import sdmetrics_scores

        sd = sdmetrics_scores(real, floor, schema, test=hold, target=target, random_state=random_state)
        out["sdmetrics"] = {k: v for k, v in sd.items() if not k.endswith("_pairs")}
        step(PHASE_WEIGHTS["sdmetrics"])
    return out


def evaluate(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    *,
    bins: int = 20,
    max_triples: int = 500,
    random_state: int = 0,
    privacy_report: Any = None,
    sdmetrics: bool = True,
    n_attack: int | None = None,
    hgb: bool = False,
    floor: pd.DataFrame | None = None,
    floor_info: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> EvaluationReport:
    """Evaluate a synthetic table against the real data it imitates.

    The result is computed from the private data (exact marginals, models trained on real rows,
    membership scores): it is NOT differentially private and is for the data owner only; every
    artefact it writes says so first (:data:`~tabpriv.evaluation.report.EVALUATION_NOTICE`).

    Args:
        real_train: The real table the synthesizer was trained on (the members).
        synthetic: The synthetic table.
        schema: The schema of both tables.
        holdout: Real rows *not* used for training (utility test set, non-members, reference data).
            Without it, utility and membership inference are skipped.
        target: Target column of the utility models (skipped when ``None``).
        bins: Equal-width bins per numeric column for the marginals (a column's own ``bins`` wins).
        max_triples: Largest number of 3-way marginals (a seeded random sample above it).
        random_state: Seed of every subsample and model.
        privacy_report: The release's :class:`~tabpriv.budget.PrivacyReport` (or its dict), shown in
            the report as the release's guarantee (the report itself is not differentially private).
        sdmetrics: Also compute the SDMetrics figures (failures there are reported, never raised).
        n_attack: Members (and non-members) attacked; default ``min(2000, n_train, n_holdout // 2)``.
        hgb: Also score a HistGradientBoosting model in the utility section.
        floor: A comparison table already sampled by a simple synthesizer at the release's ε (the
            CLI passes tabpriv's ``independent`` backend: see
            :func:`tabpriv.cli.evaluate.independent_floor`); its marginals, utility and attacks are
            computed like the release's (SDMetrics too, when on) and shown beside it
            (``results["floor"]``). It is an
            evaluation artefact for the data owner, not a release. The evaluation layer never fits
            it itself (it sits below the backends), hence the table is passed in.
        floor_info: What the floor is (e.g. ``backend``, ``epsilon``, ``delta``, ``epsilon_source``,
            ``seed``), copied into ``results["floor"]``.
        progress: ``progress(phase, done, total)``, called as each phase starts (phases from
            :data:`EVALUATION_PHASES`), after each step of the floor phase, and with
            ``("done", total, total)`` at the end; ``done`` and ``total`` count units of estimated
            work (:data:`PHASE_WEIGHTS`).

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        DataValidationError: Tables that differ from the schema, an empty synthetic table, a real
            table that fails :meth:`Schema.validate`, a missing or constant target, a hold-out too
            small for the attacks.

    """
    t_start = time.perf_counter()
    if not isinstance(schema, Schema):
        raise SchemaError(f"schema must be a tabpriv Schema; got {type(schema).__name__}.")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise DataValidationError(f"bins must be a positive integer; got {bins!r}.")
    _check_frame(real_train, "real training")
    _check_frame(synthetic, "synthetic")
    if holdout is not None:
        _check_frame(holdout, "hold-out")
    _check_columns(synthetic, schema, "synthetic")
    if floor is not None:
        _check_frame(floor, "floor")
        _check_columns(floor, schema, "floor")
        if len(floor) == 0:
            raise DataValidationError("The floor table has no rows; pass floor=None to leave it out.")
    if len(synthetic) == 0:
        raise DataValidationError(
            "The synthetic table has no rows; sample at least one row before evaluating it."
        )
    if target is not None and target not in schema.names:
        raise DataValidationError(
            f"Target column {target!r} is not in the schema; columns are {schema.names}."
        )
    real, _ = schema.validate(real_train)
    hold = schema.validate(holdout)[0] if holdout is not None else None
    if target is not None and real[target].nunique(dropna=False) < 2:
        raise DataValidationError(
            f"Target column {target!r} is constant ({real[target].iloc[0]!r}) in the real training "
            "table; a classifier cannot be scored. Pick another target."
        )
    sizes = attack_sizes(len(real), len(hold), n_attack) if hold is not None else None
    timings: dict[str, float] = {}
    phases = [
        p
        for p, runs in zip(
            EVALUATION_PHASES,
            (True, True, target is not None and hold is not None, True, sdmetrics, floor is not None),
            strict=True,
        )
        if runs
    ]

    weights = {p: PHASE_WEIGHTS.get(p, 0) for p in phases}
    if "floor" in weights:  # the floor repeats what runs of the rest, except the hold-out baseline
        weights["floor"] = sum(w for p, w in weights.items() if p != "floor")
    total_work = sum(weights.values())
    work_done = 0

    def phase(name: str) -> None:
        nonlocal work_done
        work_done = sum(weights[p] for p in phases[: phases.index(name)])
        if progress is not None:
            progress(name, work_done, total_work)

    def floor_step(work: int) -> None:
        nonlocal work_done
        work_done += work
        if progress is not None:
            progress("floor", min(work_done, total_work), total_work)

    phase("discretize")
    t = time.perf_counter()
    real_codes = discretize(real, schema, bins)
    syn_codes = discretize(synthetic, schema, bins)
    _check_kinds(synthetic, schema, syn_codes, "synthetic")
    hold_codes = discretize(hold, schema, bins) if hold is not None else None
    timings["discretize"] = time.perf_counter() - t

    results: dict[str, Any] = {
        "n_rows": {
            "real_train": len(real),
            "synthetic": len(synthetic),
            "holdout": len(hold) if hold is not None else None,
        },
        "columns": [{"name": c.name, "kind": c.kind} for c in schema.columns],
        "schema_source": schema.source,
        "settings": {
            "bins": bins,
            "max_triples": max_triples,
            "random_state": random_state,
            "target": target,
        },
        "out_of_schema": {
            "total": sum(syn_codes.out_of_schema.values()),
            "per_column": dict(syn_codes.out_of_schema),
            "note": "Values of the synthetic table outside the schema are counted here and kept "
            "in their own '(out of schema)' level for the marginals; none is dropped.",
        },
    }

    phase("marginals")
    t = time.perf_counter()
    results["marginals"] = marginal_tvds(
        real_codes, syn_codes, max_triples=max_triples, random_state=random_state
    )
    if hold_codes is not None:
        base = marginal_tvds(real_codes, hold_codes, max_triples=max_triples, random_state=random_state)
        results["marginals_holdout_baseline"] = {
            k: {"mean": base[k]["mean"], "max": base[k]["max"]} for k in ("one_way", "two_way", "three_way")
        }
    results["distributions"] = _distributions(schema, real_codes, syn_codes)
    from tabpriv.evaluation.pairs import worst_pair_tables

    results["worst_pairs"] = worst_pair_tables(
        schema, real_codes, syn_codes, results["marginals"]["two_way"]["worst"]
    )
    timings["marginals"] = time.perf_counter() - t

    if target is not None and hold is not None:
        from tabpriv.evaluation.utility import utility_scores

        phase("utility")
        t = time.perf_counter()
        results["utility"] = utility_scores(
            real, synthetic, hold, schema, target, hgb=hgb, random_state=random_state
        )
        timings["utility"] = time.perf_counter() - t
    else:
        results["utility"] = {"skipped": "needs a hold-out table and a target column"}

    phase("membership")
    t = time.perf_counter()
    attack_sets: dict[str, Any] | None = None
    train_h = row_hashes(real, schema, real_codes)
    syn_h = row_hashes(synthetic, schema, syn_codes)
    if hold is not None and hold_codes is not None and sizes is not None:
        n_att, n_ref = sizes
        rng = np.random.default_rng(random_state)
        mem_idx = np.sort(rng.choice(len(real), size=n_att, replace=False))
        perm = rng.permutation(len(hold))
        non_idx, ref_idx = np.sort(perm[:n_att]), np.sort(perm[n_att:])
        f_real = encode_features(
            real.iloc[mem_idx], schema, Codes(real_codes.codes[mem_idx], real_codes.levels)
        )
        f_hold = encode_features(hold, schema, hold_codes)
        f_syn = encode_features(synthetic, schema, syn_codes)
        attack_sets = {"members": f_real, "non_members": f_hold[non_idx], "reference": f_hold[ref_idx]}
        attacks = run_attacks(f_real, f_hold[non_idx], f_hold[ref_idx], f_syn, random_state=random_state)
        hold_h = row_hashes(hold, schema, hold_codes)
        results["membership"] = {
            "n_members": n_att,
            "n_non_members": n_att,
            "n_reference": n_ref,
            "attacks": attacks,
            "exact_match": exact_match_rates(train_h, hold_h, syn_h, train_h[mem_idx], hold_h[non_idx]),
        }
    else:
        results["membership"] = {
            "skipped": "needs a hold-out table",
            "exact_match": exact_match_rates(train_h, None, syn_h),
        }
    timings["membership"] = time.perf_counter() - t

    if sdmetrics:
        from tabpriv.evaluation.sdm import sdmetrics_scores

        phase("sdmetrics")
        t = time.perf_counter()
        results["sdmetrics"] = sdmetrics_scores(
            real, synthetic, schema, test=hold, target=target, random_state=random_state
        )
        timings["sdmetrics"] = time.perf_counter() - t
    else:
        results["sdmetrics"] = {"skipped": "disabled (sdmetrics=False)"}

    if floor is not None:
        phase("floor")
        t = time.perf_counter()
        results["floor"] = _floor_results(
            floor, floor_info, schema, bins, max_triples, random_state, real, real_codes, hold,
            target, hgb, attack_sets, sdmetrics, floor_step,
        )  # fmt: skip
        timings["floor"] = time.perf_counter() - t

    privacy = _privacy_dict(privacy_report)
    results["verdict"] = verdict(results, privacy)
    timings["total"] = time.perf_counter() - t_start
    results["timings_s"] = timings
    if progress is not None:
        progress("done", total_work, total_work)
    return EvaluationReport(results, privacy=privacy)
