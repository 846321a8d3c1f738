"""The :class:`EvaluationReport`: every number as JSON, and a self-contained HTML page with plots.

Every artefact it writes is computed from the private data and opens with :data:`EVALUATION_NOTICE`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tabpriv.evaluation.plots import ATTACK_NAMES as _ATTACK_NAMES
from tabpriv.evaluation.verdict import fmt_delta, fmt_sig

__all__ = [
    "EVALUATION_NOTICE",
    "FLOOR_NOTE",
    "METRIC_DEFINITIONS",
    "RELEASE_GUARANTEE_NOTE",
    "EvaluationReport",
]

#: The one sentence at the top of every evaluation artefact: the HTML page (a banner before any figure),
#: the JSON (its first key, ``"notice"``) and the terminal output of ``tabpriv evaluate`` and of
#: ``tabpriv synthesize --evaluate``.
EVALUATION_NOTICE = (
    "This evaluation is computed from the private data (real rows, exact marginals, models trained "
    "on real data, membership scores); it is NOT differentially private and is for the data owner "
    "only — do not publish it."
)

#: What the embedded privacy report is: the guarantee of the synthetic release, not of the evaluation.
RELEASE_GUARANTEE_NOTE = (
    "This is the release's guarantee: the privacy report of the released synthetic table, quoted as "
    "it stands (for an (ε, δ)-DP release, its (ε, δ)-DP guarantee); it covers neither this "
    "evaluation nor anything else computed from the real rows."
)

#: What the floor table is (shown beside its figures and stored as ``results["floor"]["note"]``).
FLOOR_NOTE = (
    "The independent floor is a comparison table made for this evaluation only: tabpriv's "
    "independent backend (a product of noisy 1-way marginals) fitted to the real training table at "
    "the release's ε and sampled to as many rows as the synthetic table. It is an evaluation "
    "artefact for the data owner: it is not released, and its budget is not part of the release's. "
    "A release that is no closer to the real data than the floor gains nothing from its model."
)

#: The definition of every metric, shown in the HTML report and stored in the JSON.
METRIC_DEFINITIONS: dict[str, str] = {
    "discretisation": (
        "Every column is cut into levels derived from the schema alone: categorical columns keep "
        "their declared categories; an integer column whose bounds allow at most 100 values keeps "
        "one level per value (the rule of the marginal and VAE backends; earlier reports did so only "
        "up to 20 values, so figures for integer columns of 21 to 100 values, such as age or hours "
        "per week, are not comparable with them); other numbers use at most 'bins' bins (default "
        "20; the column's own 'bins' wins) over the declared [lower, upper] bounds, with round inner "
        "edges (whole numbers for integers; a bin includes its lower edge). Missing values form "
        "their own level, and so do values outside the schema (counted under 'out of schema', "
        "never dropped)."
    ),
    "tvd": (
        "Total variation distance between the real and synthetic distributions of a marginal: "
        "TVD = ½ Σ_cells |p_real(cell) − p_synthetic(cell)|, from 0 (identical) to 1 (disjoint). "
        "1-way: each column; 2-way: every pair of columns; 3-way: every triple, or a seeded random "
        "sample of at most max_triples triples. The hold-out baseline is the same figure between "
        "the real training table and the real hold-out: the sampling noise a perfect synthesizer "
        "would show."
    ),
    "floor": FLOOR_NOTE,
    "utility": (
        "Train on synthetic, test on real (TSTR): a scikit-learn logistic regression (one-hot "
        "encoding of categorical features, median imputation and standardisation of numeric "
        "features, max_iter=1000) is fit on the synthetic table and scored on the real hold-out. "
        "The same model fit on the real training table is the ceiling (TRTR); always predicting "
        "the majority class of the real training table is the floor. Accuracy; ROC AUC (binary: "
        "score of the positive class, the minority class of the real training table; multiclass: "
        "one-vs-rest macro average); F1 (binary: of the positive class; multiclass: macro)."
    ),
    "membership": (
        "Membership inference. Members: a seeded sample of training rows; non-members: the same "
        "number of hold-out rows; the remaining hold-out rows are the attacker's reference data. "
        "Rows are encoded as one-hot categories (scaled by 1/√2 so a changed category costs "
        "distance 1) and numbers scaled to [0, 1] by the declared bounds. Each attack scores every "
        "attacked row (higher = 'member'); we report the ROC AUC (0.5 = no better than guessing) "
        "and the true-positive rate at a false-positive rate of 1% and 0.1% (Carlini et al., "
        "'Membership Inference Attacks From First Principles', 2022). The resolution of the FPR "
        "is 1 / number of non-members."
    ),
    "dcr": (
        "Distance to closest record: score = −(Euclidean distance from the row to its nearest "
        "synthetic row). A synthesizer that copies or memorises training rows puts members closer."
    ),
    "density_ratio": (
        "Density-ratio attack in the spirit of DOMIAS (van Breugel et al., 2023): score = "
        "log p_synthetic(x) − log p_reference(x), both Gaussian kernel density estimates (at most "
        "5,000 rows each) with one local bandwidth: half the median distance from a reference row "
        "to its nearest other reference row (at least 0.02). Rows where the "
        "synthetic data is denser than real data in general are flagged as members."
    ),
    "classifier": (
        "Classifier attack: a HistGradientBoosting classifier is trained to tell synthetic rows "
        "from reference rows (balanced, at most 5,000 each); its probability 'synthetic' is the "
        "membership score. Members of an overfitted model look more synthetic than non-members."
    ),
    "exact_match": (
        "Share of synthetic rows identical (every value) to a row of the real training table, and "
        "the same against the hold-out (the base rate for tables whose rows repeat naturally). "
        "Members copied / non-members copied: share of attacked members / non-members that appear "
        "verbatim in the synthetic table."
    ),
    "sdmetrics": (
        "SDMetrics (computed by the sdmetrics package itself, tables subsampled to at most "
        "max_rows rows): QualityReport score (mean of Column Shapes and Column Pair Trends); "
        "KSComplement = 1 − Kolmogorov–Smirnov statistic (mean over numeric columns); TVComplement "
        "= 1 − TVD (mean over categorical columns); CorrelationSimilarity = 1 − |ρ_real − ρ_syn| / "
        "2 with Pearson ρ (mean over numeric pairs); ContingencySimilarity = 1 − TVD of the "
        "contingency table (mean over categorical column pairs); BinaryLogisticRegression = F1 of "
        "sdmetrics' logistic regression trained on the synthetic table and tested on the real "
        "hold-out (sdmetrics scores the class of the first test row as positive)."
    ),
}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


class EvaluationReport:
    """Result of :func:`tabpriv.evaluation.evaluate`.

    Attributes:
        results: Every figure, JSON-ready (see :meth:`to_dict`).
        privacy: The release's privacy report as a dict, when one was given: the release's
            guarantee, shown as such (this report itself is not differentially private).

    """

    def __init__(self, results: dict[str, Any], privacy: dict[str, Any] | None = None) -> None:
        self.results = results
        self.privacy = privacy

    def __getitem__(self, key: str) -> Any:
        return self.results[key]

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every number of the evaluation, plus the metric definitions and the release's guarantee.

        The first keys say what the report is: ``notice`` (:data:`EVALUATION_NOTICE`), ``private``
        (true) and ``differentially_private`` (false). The release's privacy report, when given, is
        under ``release_guarantee`` (with ``release_guarantee_note``).
        """
        out: dict[str, Any] = {"notice": EVALUATION_NOTICE, "private": True, "differentially_private": False}
        out.update((k, v) for k, v in self.results.items() if k not in out)
        out["definitions"] = METRIC_DEFINITIONS
        if self.privacy is not None:
            out["release_guarantee_note"] = RELEASE_GUARANTEE_NOTE
            out["release_guarantee"] = self.privacy
        result: dict[str, Any] = _jsonable(out)
        return result

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON (non-finite numbers become null); write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            from tabpriv.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    # -- figures ------------------------------------------------------------------------------
    def figures(self) -> dict[str, bytes]:
        """Render the plots as PNG bytes: ``distributions``, ``tvd_heatmap``, ``worst_pairs``, ``mia_roc``."""
        from tabpriv.evaluation import plots

        figs = {
            "distributions": plots.distributions_figure(self.results),
            "tvd_heatmap": plots.heatmap_figure(self.results),
        }
        pairs = plots.worst_pairs_figure(self.results)
        if pairs is not None:
            figs["worst_pairs"] = pairs
        roc = plots.roc_figure(self.results)
        if roc is not None:
            figs["mia_roc"] = roc
        return figs

    # -- HTML ---------------------------------------------------------------------------------
    def to_html(self, path: str | Path | None = None) -> str:
        """Render a self-contained HTML page (plots embedded as PNG); write it to ``path``."""
        figs = self.figures()
        r = self.results

        def img(key: str, alt: str) -> str:
            if key not in figs:
                return ""
            b64 = base64.b64encode(figs[key]).decode("ascii")
            return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

        def definition(key: str) -> str:
            return f'<p class="def"><b>Definition.</b> {html.escape(METRIC_DEFINITIONS[key])}</p>'

        parts: list[str] = [
            f'<p class="private" role="alert"><b>PRIVATE.</b> {html.escape(EVALUATION_NOTICE)}</p>'
        ]
        n = r["n_rows"]
        parts.append("<h1>tabpriv evaluation report (private: for the data owner only)</h1>")
        parts.append(self._html_verdict())
        parts.append(
            f"<p>Real training rows: {n['real_train']:,}; synthetic rows: {n['synthetic']:,}; "
            f"hold-out rows: {n['holdout'] if n['holdout'] is None else format(n['holdout'], ',')}"
            f"; columns: {len(r['columns'])}; schema: {html.escape(str(r['schema_source']))}.</p>"
        )
        oos = r["out_of_schema"]
        if oos["total"]:
            rows = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in oos["per_column"].items()
            )
            parts.append(
                f'<p class="warn">The synthetic table holds {oos["total"]:,} value(s) outside the '
                "schema. They are kept (as an '(out of schema)' level), not dropped.</p>"
                f"<table><tr><th>column</th><th>values outside the schema</th></tr>{rows}</table>"
            )
        parts.append(self._html_summary())
        if self.privacy is not None:
            parts.append(self._html_privacy())
        # Marginals.
        mg = r["marginals"]
        parts.append("<h2>1. Marginals</h2>")
        parts.append(definition("discretisation"))
        parts.append(definition("tvd"))
        parts.append(self._html_marginal_table())
        if mg["three_way"]["sampled"]:
            parts.append(
                f"<p>3-way: a seeded sample of {mg['three_way']['count']} of "
                f"{mg['three_way']['total_triples']} triples.</p>"
            )
        worst = "".join(
            f"<tr><td>{html.escape(' × '.join(w['columns']))}</td><td>{w['tvd']:.3f}</td></tr>"
            for w in mg["two_way"]["worst"]
        )
        parts.append(f"<h3>Worst column pairs</h3><table><tr><th>pair</th><th>TVD</th></tr>{worst}</table>")
        parts.append(img("worst_pairs", "worst 2-way marginals, real vs synthetic"))
        parts.append("<h3>Per-column distributions (real vs synthetic)</h3>")
        parts.append(img("distributions", "per-column distributions"))
        parts.append("<h3>2-way TVD heatmap</h3>")
        parts.append(img("tvd_heatmap", "2-way TVD heatmap"))
        parts.append(self._html_sdmetrics())
        parts.append(self._html_utility())
        parts.append(self._html_membership(img))
        t = r.get("timings_s", {})
        parts.append(
            "<h2>Timings</h2><p>" + ", ".join(f"{html.escape(k)} {v:.2f} s" for k, v in t.items()) + "</p>"
        )
        body = "\n".join(p for p in parts if p)
        page = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>PRIVATE tabpriv evaluation report (not differentially private; data owner only)"
            "</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
            "color:#222}table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;"
            "padding:.25em .6em;text-align:right}th{background:#f2f2f2}td:first-child{text-align:"
            "left}img{max-width:100%}.private{color:#fff;background:#a40000;font-size:1.1em;padding:"
            ".7em 1em;border-radius:4px}.def{color:#444;font-size:.92em;background:#f8f8f8;padding:"
            ".5em .8em;border-left:3px solid #aaa}.warn{color:#a40000;font-weight:bold}"
            ".verdict{font-size:1.08em;background:#eef5ff;border-left:4px solid #1f5fbf;padding:"
            ".6em 1em;margin:1em 0}.verdict .rules{font-size:.85em;color:#444;margin:.2em 0}"
            ".verdict .rules-head{font-size:.85em;color:#444;margin:.6em 0 .2em}"
            ".privacy p{margin:.35em 0}details pre{font-size:.8em;background:#f8f8f8;padding:.6em;"
            "overflow-x:auto}"
            "</style></head><body>\n" + body + "\n</body></html>\n"
        )
        if path is not None:
            from tabpriv.io import atomic_write_text

            atomic_write_text(Path(path), page)
        return page

    def _floor_label(self) -> str | None:
        """The floor's row label (``None`` without a floor)."""
        f = self.results.get("floor")
        if not f:
            return None
        eps = f.get("epsilon")
        at = f" at ε = {fmt_sig(eps)}" if isinstance(eps, int | float) else ""
        return f"independent floor{at} (evaluation only, not released)"

    def _html_verdict(self) -> str:
        v = self.results.get("verdict")
        if not v:
            return ""
        rules = "".join(f"<li>{html.escape(x)}</li>" for x in v["rules"])
        return (
            '<div class="verdict" id="verdict"><p><b>Verdict.</b> '
            f'<span class="verdict-guarantee">{html.escape(v["guarantee"])}</span> '
            f'<span class="verdict-findings">{html.escape(v["findings"])}</span></p>'
            '<p class="rules-head">How the verdict is computed (the same rules are stored in the JSON, '
            'under "verdict"):</p>'
            f'<ul class="rules">{rules}</ul></div>'
        )

    def _html_marginal_table(self) -> str:
        r = self.results
        mg = r["marginals"]
        keys = ("one_way", "two_way", "three_way")
        compared: list[tuple[str, dict[str, Any]]] = [("release (synthetic table)", mg)]
        base = r.get("marginals_holdout_baseline")
        if base:
            compared.append(("hold-out baseline: real hold-out rows (sampling noise)", base))
        floor_label = self._floor_label()
        if floor_label:
            compared.append((floor_label, r["floor"]["marginals"]))
        two_base = (base or {}).get("two_way", {}).get("mean")
        rows = ""
        for label, m in compared:
            cells = "".join(f"<td>{_fmt(m[k]['mean'])}</td><td>{_fmt(m[k]['max'])}</td>" for k in keys)
            ratio = "–"
            if two_base:
                ratio = f"{m['two_way']['mean'] / two_base:.1f}×"
            rows += f"<tr><td>{html.escape(label)}</td>{cells}<td>{ratio}</td></tr>"
        counts = ", ".join(
            f"{lab} {mg[k]['count']:,}" for k, lab in zip(keys, ("1-way", "2-way", "3-way"), strict=True)
        )
        return (
            f"<p>Each table is compared with the real training table. Marginals compared: {counts}.</p>"
            '<table class="marginals"><tr><th>compared with the real training rows</th>'
            "<th>1-way mean TVD</th><th>1-way worst</th><th>2-way mean TVD</th><th>2-way worst</th>"
            "<th>3-way mean TVD</th><th>3-way worst</th><th>2-way mean ÷ hold-out baseline</th></tr>"
            f"{rows}</table>" + (f'<p class="def">{html.escape(FLOOR_NOTE)}</p>' if floor_label else "")
        )

    def _html_summary(self) -> str:
        r = self.results
        items = [
            f"mean 2-way TVD {_fmt(r['marginals']['two_way']['mean'])}",
        ]
        u = r.get("utility", {})
        lr = u.get("models", {}).get("logistic_regression")
        if lr:
            items.append(
                f"logistic-regression accuracy {_fmt(lr['synthetic']['accuracy'])} (synthetic) vs "
                f"{_fmt(lr['real']['accuracy'])} (real) vs {_fmt(lr['majority']['accuracy'])} "
                "(majority class)"
            )
        att = r.get("membership", {}).get("attacks")
        if att:
            worst = max(att.values(), key=lambda a: a["auc"])
            items.append(f"highest membership-inference AUC {worst['auc']:.3f} (0.5 = guessing)")
        em = r.get("membership", {}).get("exact_match", {})
        items.append(f"{100 * em.get('synthetic_in_train', 0.0):.2f}% of synthetic rows copy a training row")
        return "<h2>Summary</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def _html_privacy(self) -> str:
        p = self.privacy or {}
        extra: dict[str, Any] = p["extra"] if isinstance(p.get("extra"), dict) else {}
        sentences: list[str] = []
        backend = p.get("backend")
        choice = extra.get("backend_choice")
        what = "a synthetic table"
        if isinstance(p.get("rows_out"), int):
            what += f" of {p['rows_out']:,} rows"
        if backend:
            what += f" sampled by the {backend} backend" + (f" ({choice})" if choice else "")
        if isinstance(p.get("rows_in"), int):
            what += f" from a model fitted to {p['rows_in']:,} private rows"
        sentences.append(f"What was released: {what}.")
        eps, delta = p.get("epsilon"), p.get("delta")
        figs = (
            " and ".join(
                x
                for x in (
                    f"ε = {fmt_sig(eps)}" if isinstance(eps, int | float) else "",
                    f"δ = {fmt_delta(delta)}" if isinstance(delta, int | float) else "",
                )
                if x
            )
            or "ε and δ not stated"
        )
        adjacency = p.get("adjacency")
        end_to_end = p.get("end_to_end_dp") is True and p.get("guarantee", "dp") == "dp"
        if end_to_end:
            sentences.append(
                f"Guarantee: end-to-end (ε, δ)-differential privacy with {figs}: it covers training "
                "and every table sampled from the fitted model."
            )
        elif p.get("guarantee") == "conditional":
            sentences.append(
                "Guarantee: NOT end-to-end; it does not cover training. It is a per-record guarantee "
                f"(nominal {figs}) conditional on the trained model, which was fitted to the private "
                "rows without that guarantee."
            )
        elif "end_to_end_dp" not in p:
            sentences.append(
                f"Guarantee: nominal {figs}; the privacy report does not say whether it is end-to-end, "
                "so treat it as NOT end-to-end."
            )
        else:
            why = (
                " the column domains (bounds, categories) were read off the private data"
                if p.get("schema_source") == "inferred"
                else " see the warnings below"
            )
            sentences.append(f"Guarantee: NOT end-to-end (nominal {figs}):{why}.")
        if adjacency == "replace-one":
            sentences.append(
                "Adjacency: replace-one (two tables are neighbours when they have the same number of "
                "rows and differ in one record replaced by another)."
            )
        elif adjacency:
            sentences.append(f"Adjacency: {adjacency}.")
        b_eps, b_delta = p.get("budget_epsilon"), p.get("budget_delta")
        if isinstance(b_eps, int | float) and isinstance(eps, int | float):
            budget = f"Budget: ε = {fmt_sig(eps)} spent of ε = {fmt_sig(b_eps)} asked for"
            if isinstance(b_delta, int | float) and isinstance(delta, int | float):
                budget += f"; δ = {fmt_delta(delta)} of δ = {fmt_delta(b_delta)}"
            sentences.append(budget + ".")
        if p.get("mechanism"):
            sentences.append(f"Mechanism: {p['mechanism']}.")
        if p.get("accountant"):
            sentences.append(f"Accountant: {p['accountant']}.")
        source = p.get("schema_source")
        if source == "declared":
            sentences.append("Column domains: from the declared public schema (no budget spent).")
        elif source == "inferred":
            sentences.append("Column domains: inferred from the private data (not covered by the guarantee).")
        if p.get("seeded") is True:
            sentences.append(
                "Seeded (research only): the noise came from a user seed (--seed); anyone who knows "
                "the seed can regenerate it, so a seeded release is not private unless the seed stays "
                "secret."
            )
        elif p.get("seeded") is False:
            sentences.append("Noise: from the operating system's entropy (not seeded).")

        def bullets(title: str, key: str) -> str:
            items = p.get(key)
            if not items:
                return ""
            if isinstance(items, str):
                items = [items]
            lis = "".join(f"<li>{html.escape(str(x))}</li>" for x in items)
            return f"<p><b>{title}</b></p><ul>{lis}</ul>"

        body = "".join(f"<p>{html.escape(x)}</p>" for x in sentences)
        body += bullets("Covered by the guarantee:", "covered")
        body += bullets("Not covered:", "not_covered")
        body += bullets("Warnings:", "warnings")
        raw = json.dumps(_jsonable(p), indent=2, ensure_ascii=False, sort_keys=False)
        return (
            "<h2>The release's guarantee</h2>"
            f'<p class="def">{html.escape(RELEASE_GUARANTEE_NOTE)}</p>'
            f'<div class="privacy" id="privacy">{body}</div>'
            "<details><summary>The release's privacy report, machine-readable (JSON, as saved beside "
            f"the release)</summary><pre>{html.escape(raw)}</pre></details>"
        )

    def _html_sdmetrics(self) -> str:
        sd = self.results.get("sdmetrics", {})
        head = "<h2>SDMetrics</h2>" + (
            f'<p class="def"><b>Definition.</b> {html.escape(METRIC_DEFINITIONS["sdmetrics"])}</p>'
        )
        if "skipped" in sd:
            return head + f"<p>Skipped: {html.escape(sd['skipped'])}.</p>"
        floor_label = self._floor_label()
        fsd = (self.results.get("floor") or {}).get("sdmetrics")
        fsd = fsd if floor_label and isinstance(fsd, dict) else None
        rows = ""
        for k in (
            "quality_score",
            "KSComplement",
            "TVComplement",
            "ContingencySimilarity",
            "CorrelationSimilarity",
            "BinaryLogisticRegression",
        ):
            f_cell = f"<td>{_fmt(fsd.get(k))}</td>" if fsd is not None else ""
            rows += f"<tr><td>{k}</td><td>{_fmt(sd.get(k))}</td>{f_cell}</tr>"
        f_props = (fsd or {}).get("properties", {})
        for k, v in sd.get("properties", {}).items():
            f_cell = f"<td>{_fmt(f_props.get(k))}</td>" if fsd is not None else ""
            rows += f"<tr><td>QualityReport: {html.escape(k)}</td><td>{_fmt(v)}</td>{f_cell}</tr>"
        err = "".join(f'<p class="warn">{html.escape(str(v))}</p>' for k, v in sd.items() if "error" in k)
        err += "".join(f"<p>Note: {html.escape(str(v))}.</p>" for k, v in sd.items() if k.endswith("_note"))
        if fsd is not None:
            err += "".join(
                f'<p class="warn">Independent floor: {html.escape(str(v))}</p>'
                for k, v in fsd.items()
                if "error" in k
            )
        f_head = f"<th>{html.escape(floor_label)}</th>" if fsd is not None and floor_label else ""
        return (
            head
            + f"<table><tr><th>metric (1 = best)</th><th>release (synthetic table)</th>{f_head}</tr>"
            + f"{rows}</table>"
            + err
        )

    def _html_utility(self) -> str:
        u = self.results.get("utility", {})
        head = "<h2>2. Utility (train on synthetic, test on real)</h2>" + (
            f'<p class="def"><b>Definition.</b> {html.escape(METRIC_DEFINITIONS["utility"])}</p>'
        )
        if "skipped" in u:
            return head + f"<p>Skipped: {html.escape(u['skipped'])}.</p>"
        rows = ""
        floor_label = self._floor_label()
        floor_u = (self.results.get("floor") or {}).get("utility", {})
        for model, m in u["models"].items():
            m = dict(m)
            whos = [("synthetic", "trained on synthetic (TSTR)")]
            if floor_label and model in floor_u:
                m["floor"] = floor_u[model]
                whos.append(("floor", f"trained on the {floor_label}"))
            whos += [("real", "trained on real (ceiling)"), ("majority", "majority class (no model)")]
            for who, label in whos:
                s = m[who]
                rows += (
                    f"<tr><td>{html.escape(model)}: {label}</td><td>{_fmt(s['accuracy'])}</td>"
                    f"<td>{_fmt(s['roc_auc'])}</td><td>{_fmt(s['f1'])}</td></tr>"
                )
        pos = u.get("positive_class")
        info = (
            f"<p>Target {html.escape(str(u['target']))!s}; classes "
            f"{html.escape(', '.join(u['classes']))}"
            + (f"; positive class {html.escape(str(pos))}" if pos is not None else "")
            + f"; tested on {u['n_test']:,} hold-out rows.</p>"
        )
        notes = "".join(f"<p>Note: {html.escape(n)}.</p>" for n in u.get("notes", []))
        return (
            head
            + info
            + "<table><tr><th>model</th><th>accuracy</th><th>ROC AUC</th>"
            + f"<th>F1 ({u['f1_average']})</th></tr>{rows}</table>"
            + notes
        )

    def _html_membership(self, img: Any) -> str:
        m = self.results.get("membership", {})
        head = "<h2>3. Membership inference</h2>" + "".join(
            f'<p class="def"><b>{html.escape(k)}.</b> {html.escape(METRIC_DEFINITIONS[k])}</p>'
            for k in ("membership", "dcr", "density_ratio", "classifier", "exact_match")
        )
        em = m.get("exact_match", {})
        em_rows = "".join(
            f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{_fmt(v, 4)}</td></tr>"
            for k, v in em.items()
        )
        em_html = f"<table><tr><th>exact match</th><th>rate</th></tr>{em_rows}</table>"
        if "skipped" in m:
            return head + f"<p>Attacks skipped: {html.escape(m['skipped'])}.</p>" + em_html
        floor_label = self._floor_label()
        floor_m = (self.results.get("floor") or {}).get("membership", {})
        rows = ""
        for k, a in m["attacks"].items():
            against = [("release (synthetic table)", a)]
            if floor_label and k in floor_m:
                against.append((floor_label, floor_m[k]))
            for label, x in against:
                rows += (
                    f"<tr><td>{html.escape(_ATTACK_NAMES.get(k, k))}</td>"
                    f"<td style='text-align:left'>{html.escape(label)}</td><td>{x['auc']:.3f}</td>"
                    f"<td>{x['tpr_at_fpr_1pct']:.4f}</td><td>{x['tpr_at_fpr_0.1pct']:.4f}</td></tr>"
                )
        return (
            head + f"<p>{m['n_members']:,} members, {m['n_non_members']:,} non-members, "
            f"{m['n_reference']:,} reference rows"
            + (
                "; the floor is attacked with the same members, non-members and reference rows"
                if floor_label and floor_m
                else ""
            )
            + ".</p>"
            + "<table><tr><th>attack</th><th>table attacked</th><th>ROC AUC</th><th>TPR @ FPR 1%</th>"
            + f"<th>TPR @ FPR 0.1%</th></tr>{rows}</table>"
            + img("mia_roc", "membership inference ROC curves")
            + em_html
        )
