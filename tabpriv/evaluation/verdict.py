"""The report's verdict: one or two sentences computed from the figures by stated rules.

:func:`verdict` reads the ``results`` dict of :func:`~tabpriv.evaluation.evaluate` (and the release's
privacy report, when given) and returns ``{"text": ..., "rules": [...], "checks": {...}}``: the text a
statistician reads at the top of the report, the rules that produced it (printed in the report and
stored in the JSON) and the figures each rule looked at. Like the rest of the evaluation it is computed
from the private data and is for the data owner only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MARGINAL_CLOSE",
    "MARGINAL_MODERATE",
    "MIA_MAX_AUC",
    "MIA_MAX_TPR_1PCT",
    "UTILITY_CLOSE_PCT",
    "UTILITY_USABLE_PCT",
    "VERDICT_RULES",
    "fmt_delta",
    "fmt_sig",
    "verdict",
]

#: 2-way mean TVD at most this multiple of the hold-out baseline: "within 2× of sampling noise".
MARGINAL_CLOSE = 2.0
#: ... at most this multiple: "within 5× of sampling noise"; above it: "far from the real data".
MARGINAL_MODERATE = 5.0
#: TSTR logistic-regression ROC AUC at least this % of the real-data (TRTR) AUC: "close to real data".
UTILITY_CLOSE_PCT = 95.0
#: ... at least this %: "usable, with some loss"; below it: "well below real data".
UTILITY_USABLE_PCT = 85.0
#: No membership signal: every attack's ROC AUC at most this ...
MIA_MAX_AUC = 0.55
#: ... and every attack's true-positive rate at a 1% false-positive rate at most this.
MIA_MAX_TPR_1PCT = 0.02

#: The rules, in words (printed in the report and stored as ``results["verdict"]["rules"]``).
VERDICT_RULES: list[str] = [
    "Guarantee: restated from the release's privacy report: ε and δ to 3 significant digits, and "
    "whether the guarantee is end-to-end (training included) or conditional/partial (then labelled "
    "'not end-to-end'); a seeded run is labelled 'seeded (research only)'.",
    f"Marginals: r = mean 2-way TVD of the release ÷ mean 2-way TVD of the hold-out baseline (real "
    f"training vs real hold-out, i.e. sampling noise). r ≤ {MARGINAL_CLOSE:g}: 'within "
    f"{MARGINAL_CLOSE:g}× of sampling noise'; r ≤ {MARGINAL_MODERATE:g}: 'within "
    f"{MARGINAL_MODERATE:g}× of sampling noise'; otherwise 'far from the real data'. Without a "
    "hold-out the ratio is not computed and the verdict says so.",
    "Floor: when the independent floor (tabpriv's independent backend at the same ε) was evaluated, "
    "the release's mean 2-way TVD is compared with the floor's: lower = 'closer than the independent "
    "floor', otherwise 'no closer than the independent floor' (a product of 1-way marginals does as "
    "well on 2-way marginals).",
    f"Utility: p = ROC AUC of a logistic regression trained on the synthetic table ÷ the same model "
    f"trained on the real training table, both tested on the real hold-out (×100). p ≥ "
    f"{UTILITY_CLOSE_PCT:g}%: 'close to real-data utility'; p ≥ {UTILITY_USABLE_PCT:g}%: 'usable, "
    "with some loss'; otherwise 'well below real-data utility' (chance is an AUC of 0.5). Without a "
    "target and a hold-out, utility is not measured and the verdict says so.",
    f"Membership: 'no membership signal detected' when every attack has ROC AUC ≤ {MIA_MAX_AUC:g} and "
    f"a true-positive rate at 1% false-positive rate ≤ {100 * MIA_MAX_TPR_1PCT:g}%; otherwise the "
    "verdict names the strongest attack and its figures. Without a hold-out the attacks do not run "
    "and the verdict says so.",
]


def fmt_sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without an exponent for everyday sizes.

    >>> fmt_sig(5.099999999998631), fmt_sig(0.5), fmt_sig(123.4), fmt_sig(12345.6)
    ('5.10', '0.500', '123', '12,300')
    """
    v = float(x)
    if not math.isfinite(v):
        return str(v)
    if v == 0.0:
        return "0"
    rounded = f"{v:.{digits - 1}e}"  # the exponent after rounding (999.9 -> 1.00e+03)
    exp = int(rounded.split("e")[1])
    if exp < -4:
        return fmt_delta(v, digits)
    return f"{float(rounded):,.{max(digits - 1 - exp, 0)}f}"


def fmt_delta(x: float, digits: int = 3) -> str:
    """A small probability to ``digits`` significant digits in scientific form (``1.00 × 10⁻⁵``)."""
    v = float(x)
    if v == 0.0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    e = int(exp)
    if -4 <= e <= 0:
        return fmt_sig(v, digits)
    sup = str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{mant} × 10{sup}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def guarantee_phrase(privacy: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The guarantee restated in one sentence (no '(ε, δ)-DP' claim unless end-to-end), and its check."""
    if not privacy:
        return (
            "No privacy report was given: this report does not know the release's guarantee.",
            {"given": False},
        )
    eps, delta = privacy.get("epsilon"), privacy.get("delta")
    backend = privacy.get("backend")
    end_to_end = privacy.get("end_to_end_dp") is True and privacy.get("guarantee", "dp") == "dp"
    seeded = privacy.get("seeded") is True
    check = {
        "given": True,
        "backend": backend,
        "epsilon": eps,
        "delta": delta,
        "end_to_end": end_to_end,
        "guarantee": privacy.get("guarantee"),
        "seeded": seeded,
    }
    figs = []
    if isinstance(eps, int | float):
        figs.append(f"ε = {fmt_sig(eps)}")
    if isinstance(delta, int | float):
        figs.append(f"δ = {fmt_delta(delta)}")
    figures = ", ".join(figs) if figs else "ε and δ not stated"
    who = f"The {backend} release" if backend else "The release"
    adjacency = privacy.get("adjacency")
    adj = f"{adjacency} adjacency" if adjacency else "adjacency not stated"
    if end_to_end:
        text = f"{who} is end-to-end DP at {figures} ({adj}; training included)"
    elif privacy.get("guarantee") == "conditional":
        text = (
            f"{who} is NOT end-to-end DP: its guarantee (nominal {figures}, {adj}) is per record and "
            "conditional on the trained model; it does not cover training"
        )
    elif "end_to_end_dp" not in privacy:
        text = (
            f"{who} has a nominal {figures} ({adj}); its privacy report does not say whether the "
            "guarantee is end-to-end, so treat it as NOT end-to-end DP"
        )
    elif privacy.get("schema_source") == "inferred":
        text = (
            f"{who} is NOT end-to-end DP: its guarantee (nominal {figures}, {adj}) does not cover the "
            "column domains, which were read off the private data"
        )
    else:
        text = f"{who} is NOT end-to-end DP (nominal {figures}, {adj}); see the release's guarantee"
    if seeded:
        text += "; seeded (research only): the noise came from a user seed"
    return text + ".", check


def _marginal_part(results: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    release = float(results["marginals"]["two_way"]["mean"])
    base = results.get("marginals_holdout_baseline", {}).get("two_way", {}).get("mean")
    check: dict[str, Any] = {"release_2way_mean_tvd": release, "holdout_2way_mean_tvd": base}
    if base is None:
        check.update(ratio=None, band="no hold-out")
        text = (
            f"2-way marginals: mean TVD {release:.3f}, not compared with sampling noise (no hold-out "
            "table was given)"
        )
    else:
        base = float(base)
        ratio = release / base if base > 0 else (1.0 if release == 0 else math.inf)
        check["ratio"] = ratio if math.isfinite(ratio) else None
        if ratio <= MARGINAL_CLOSE:
            band, words = "close", f"within {MARGINAL_CLOSE:g}× of sampling noise"
        elif ratio <= MARGINAL_MODERATE:
            band, words = "moderate", f"within {MARGINAL_MODERATE:g}× of sampling noise"
        else:
            band, words = "far", "far from the real data"
        check["band"] = band
        r = f"{ratio:.1f}×" if math.isfinite(ratio) else "∞×"
        text = f"2-way marginals {words} (mean TVD {release:.3f} vs {base:.3f} between real samples: {r})"
    floor = results.get("floor", {}).get("marginals", {}).get("two_way", {}).get("mean")
    check["floor_2way_mean_tvd"] = floor
    if floor is not None:
        better = release < float(floor)
        check["beats_floor"] = better
        text += (
            f", closer than the independent floor at the same ε ({float(floor):.3f})"
            if better
            else f", no closer than the independent floor at the same ε ({float(floor):.3f})"
        )
    return text, check


def _utility_part(results: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    u = results.get("utility", {})
    lr = u.get("models", {}).get("logistic_regression") if "skipped" not in u else None
    if not lr:
        why = u.get("skipped", "no utility figures")
        return f"utility not measured ({why})", {"measured": False, "reason": why}
    syn, real = lr["synthetic"].get("roc_auc"), lr["real"].get("roc_auc")
    check: dict[str, Any] = {"measured": True, "tstr_auc": syn, "trtr_auc": real}
    if syn is None or real is None or not real:
        check.update(pct=None, band="no AUC")
        return "utility: no ROC AUC could be computed", check
    pct = 100 * float(syn) / float(real)
    if pct >= UTILITY_CLOSE_PCT:
        band, words = "close", "close to real-data utility"
    elif pct >= UTILITY_USABLE_PCT:
        band, words = "usable", "usable, with some loss"
    else:
        band, words = "low", "well below real-data utility"
    check.update(pct=pct, band=band)
    floor = results.get("floor", {}).get("utility", {}).get("logistic_regression", {}).get("roc_auc")
    check["floor_auc"] = floor
    text = (
        f"a logistic regression trained on it reaches {pct:.0f}% of the real-data ROC AUC "
        f"({float(syn):.3f} vs {float(real):.3f}; {words})"
    )
    return text, check


def _membership_part(results: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    m = results.get("membership", {})
    attacks = m.get("attacks")
    if not attacks:
        why = m.get("skipped", "no attack figures")
        return f"membership inference not tested ({why})", {"tested": False, "reason": why}
    worst = max(attacks, key=lambda k: attacks[k]["auc"])
    max_auc = max(float(a["auc"]) for a in attacks.values())
    max_tpr = max(float(a["tpr_at_fpr_1pct"]) for a in attacks.values())
    signal = max_auc > MIA_MAX_AUC or max_tpr > MIA_MAX_TPR_1PCT
    check = {
        "tested": True,
        "max_auc": max_auc,
        "max_tpr_at_fpr_1pct": max_tpr,
        "strongest_attack": worst,
        "signal": signal,
    }
    if not signal:
        text = (
            f"no membership signal detected (highest attack AUC {max_auc:.3f}, highest TPR at 1% FPR "
            f"{_pct(max_tpr)})"
        )
    else:
        names = {"dcr": "distance to closest record", "density_ratio": "density ratio"}
        text = (
            f"membership signal seen: the {names.get(worst, worst)} attack reaches AUC "
            f"{float(attacks[worst]['auc']):.3f} (highest TPR at 1% FPR over the attacks "
            f"{_pct(max_tpr)}; thresholds {MIA_MAX_AUC:g} and {100 * MIA_MAX_TPR_1PCT:g}%)"
        )
    return text, check


def verdict(results: Mapping[str, Any], privacy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The verdict of an evaluation: ``{"text", "guarantee", "findings", "rules", "checks"}``.

    Args:
        results: The evaluation's figures (``EvaluationReport.results``).
        privacy: The release's privacy report as a dict (``PrivacyReport.to_dict()``), if any.

    Returns:
        ``text``: two sentences (the guarantee; the findings); ``guarantee`` and ``findings``: each
        sentence alone; ``rules``: :data:`VERDICT_RULES`; ``checks``: the figures each rule read and
        the band it chose.

    """
    g_text, g_check = guarantee_phrase(privacy)
    parts, checks = [], {"guarantee": g_check}
    for key, fn in (
        ("marginals", _marginal_part),
        ("utility", _utility_part),
        ("membership", _membership_part),
    ):
        text, check = fn(results)
        parts.append(text)
        checks[key] = check
    findings = "; ".join(parts)
    findings = findings[0].upper() + findings[1:] + "."
    return {
        "text": f"{g_text} {findings}",
        "guarantee": g_text,
        "findings": findings,
        "rules": list(VERDICT_RULES),
        "checks": checks,
    }
