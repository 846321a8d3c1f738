"""The report's text: the verdict (each rule's branches), the privacy sentences, the comparison rows
(hold-out baseline, independent floor) and the progress callback (issue 17 items 10, 11, 14)."""

from __future__ import annotations

import html
import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tabpriv.cli.evaluate import (
    DEFAULT_FLOOR_EPSILON,
    EVALUATION_PHASE_LABELS,
    evaluate_command,
    independent_floor,
)
from tabpriv.errors import DataValidationError, PrivacyWarning
from tabpriv.evaluation import EvaluationReport, evaluate
from tabpriv.evaluation.core import EVALUATION_PHASES, PHASE_WEIGHTS
from tabpriv.evaluation.report import FLOOR_NOTE
from tabpriv.evaluation.verdict import (
    MARGINAL_CLOSE,
    MARGINAL_MODERATE,
    MIA_MAX_AUC,
    MIA_MAX_TPR_1PCT,
    UTILITY_CLOSE_PCT,
    UTILITY_USABLE_PCT,
    VERDICT_RULES,
    fmt_delta,
    fmt_sig,
    verdict,
)
from tabpriv.synthesizer import Synthesizer

from .conftest import draw, make_schema

SCHEMA = make_schema()

#: AIM's privacy report from a real run (400 rows, eps=5.1; `noise` and `spends` left out, extra cut):
#: too slow to fit in a unit test (14 CPU-s), kept to check that its lists never show as Python reprs.
AIM_REPORT: dict[str, Any] = {
    "backend": "aim",
    "guarantee": "dp",
    "guarantee_text": "(epsilon, delta)-differential privacy of the whole release, training included",
    "epsilon": 5.099999999998631,
    "delta": 1e-05,
    "budget_epsilon": 5.1,
    "budget_delta": 1e-05,
    "adjacency": "replace-one",
    "accountant": "zCDP: discrete Gaussian measurements rho = Delta_2^2 / (2 sigma^2) "
    "(Canonne-Kamath-Steinke 2020) + exponential-mechanism selections rho = epsilon^2 / 8 "
    "(Cesar-Rogers 2021, OpenDP's noisy-max map), fully adaptive composition to a fixed total "
    "(privacy filter); rho-zCDP -> (epsilon, delta) by the conversion of Canonne, Kamath & Steinke "
    "2020 (Corollary 13), minimised over the Renyi order",
    "mechanism": "AIM (McKenna-Mullins-Sheldon-Miklau 2022): discrete Gaussian on every one-way "
    "marginal, then adaptive rounds of exponential-mechanism selection + discrete Gaussian measurement "
    "(workload: all 2-way marginals)",
    "covered": [
        "every noisy marginal and every selection made on private data, and every table sampled from "
        "the model fitted to them (post-processing)",
        "column domains: declared public schema, no budget spent",
    ],
    "not_covered": ["the number of rows n, treated as public (replace-one adjacency)"],
    "end_to_end_dp": True,
    "schema_source": "declared",
    "rows_in": 400,
    "rows_out": 100,
    "seeded": False,
    "warnings": [],
    "extra": {
        "backend_choice": "named by the user",
        "selected_marginals": [["colour"], ["age"], ["income", "label"]],
    },
    "headline": "(5.1, 1e-05)-differentially private (replace-one adjacency; zCDP ...)",
}


def _fit_report(
    backend: str, params: dict[str, Any], seed: int | None, schema: Any = SCHEMA
) -> dict[str, Any]:
    s = Synthesizer(backend=backend, epsilon=5.1, schema=schema, random_state=seed, backend_params=params)
    s.fit(draw(300, 1))
    s.sample(50)
    assert s.privacy_report is not None
    return s.privacy_report.to_dict()


@pytest.fixture(scope="module")
def privacy_reports() -> dict[str, dict[str, Any]]:
    """Privacy reports of real (tiny) fits: end-to-end, seeded, conditional and inferred-schema ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)  # the inferred schema's warning is the point
        inferred = _fit_report("independent", {}, None, schema="infer")
    return {
        "independent": _fit_report("independent", {}, None),
        "aim": AIM_REPORT,
        "slicing_seeded": _fit_report("slicing", {"steps": 2, "n_slices": 16}, 0),
        "lipschitz_vae": _fit_report("lipschitz-vae", {"epochs": 1}, None),
        "lipschitz_vae_paper": _fit_report(
            "lipschitz-vae",
            {"epochs": 1, "mode": "paper", "allow_paper_mode": True, "release": "reconstruction"},
            None,
        ),
        "inferred": inferred,
    }


@pytest.fixture(scope="module")
def compared() -> tuple[EvaluationReport, list[tuple[str, int, int]]]:
    """One evaluation with a hold-out, a target and a floor; the progress calls it made."""
    calls: list[tuple[str, int, int]] = []
    rep = evaluate(
        draw(600, 1), draw(600, 3), SCHEMA, holdout=draw(600, 2), target="label", sdmetrics=False,
        n_attack=200, floor=draw(600, 4), floor_info={"backend": "independent", "epsilon": 2.5},
        progress=lambda *a: calls.append(a),
    )  # fmt: skip
    return rep, calls


@pytest.fixture(scope="module")
def compared_page(compared: tuple[EvaluationReport, Any]) -> str:
    """``compared``'s HTML page, rendered once (its figures take seconds: mostly the worst pairs)."""
    return compared[0].to_html()


@pytest.fixture(scope="module")
def compared_figures(compared: tuple[EvaluationReport, Any]) -> dict[str, bytes]:
    """``compared``'s figures, rendered once: a page of the same results with another privacy report
    embeds the same figures (they are drawn from ``results`` alone)."""
    return compared[0].figures()


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _privacy_sentences(page: str) -> str:
    """The privacy section's words (without its machine-readable JSON)."""
    start = page.index("<h2>The release's guarantee</h2>")
    return _text(page[start : page.index("<details>", start)])


def _section(page: str, head: str) -> str:
    start = page.index(head)
    return page[start : page.index("<h2>", start + len(head))]


# -- number formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "text"),
    [(5.099999999998631, "5.10"), (0.5, "0.500"), (123.4, "123"), (999.9, "1,000"), (12345.6, "12,300"),
     (1.0, "1.00"), (0.00123, "0.00123"), (1e-5, "1.00 × 10⁻⁵")],
)  # fmt: skip
def test_three_significant_digits(x: float, text: str) -> None:
    assert fmt_sig(x) == text


def test_delta_format() -> None:
    assert fmt_delta(1e-5) == "1.00 × 10⁻⁵"
    assert fmt_delta(3.2e-7) == "3.20 × 10⁻⁷"
    assert fmt_delta(0.01) == "0.0100"


# -- verdict rules, one branch at a time ------------------------------------------------------------


def _results(
    *, release: float = 0.03, base: float | None = 0.02, floor: float | None = None,
    syn_auc: float | None = 0.85, real_auc: float = 0.90, utility: bool = True,
    attacks: dict[str, tuple[float, float]] | None = None, membership: bool = True,
) -> dict[str, Any]:  # fmt: skip
    r: dict[str, Any] = {"marginals": {"two_way": {"mean": release}}}
    if base is not None:
        r["marginals_holdout_baseline"] = {"two_way": {"mean": base}}
    if floor is not None:
        r["floor"] = {"marginals": {"two_way": {"mean": floor}}}
    if utility:
        r["utility"] = {
            "models": {
                "logistic_regression": {"synthetic": {"roc_auc": syn_auc}, "real": {"roc_auc": real_auc}}
            }
        }
    else:
        r["utility"] = {"skipped": "needs a hold-out table and a target column"}
    if membership:
        att = attacks or {"dcr": (0.51, 0.01), "density_ratio": (0.50, 0.012), "classifier": (0.52, 0.015)}
        r["membership"] = {"attacks": {k: {"auc": a, "tpr_at_fpr_1pct": t} for k, (a, t) in att.items()}}
    else:
        r["membership"] = {"skipped": "needs a hold-out table"}
    return r


@pytest.mark.parametrize(
    ("ratio", "band", "words"),
    [(MARGINAL_CLOSE, "close", "within 2× of sampling noise"),
     (MARGINAL_CLOSE + 0.1, "moderate", "within 5× of sampling noise"),
     (MARGINAL_MODERATE, "moderate", "within 5× of sampling noise"),
     (MARGINAL_MODERATE + 0.1, "far", "far from the real data")],
)  # fmt: skip
def test_verdict_marginal_bands(ratio: float, band: str, words: str) -> None:
    v = verdict(_results(release=0.02 * ratio, base=0.02))
    assert v["checks"]["marginals"]["band"] == band
    assert v["checks"]["marginals"]["ratio"] == pytest.approx(ratio)
    assert words in v["findings"]
    assert f"{ratio:.1f}×" in v["findings"]


def test_verdict_without_holdout_says_so() -> None:
    v = verdict(_results(base=None, utility=False, membership=False))
    c = v["checks"]
    assert c["marginals"]["ratio"] is None and c["marginals"]["band"] == "no hold-out"
    assert "not compared with sampling noise (no hold-out table was given)" in v["findings"]
    assert c["utility"]["measured"] is False
    assert "utility not measured (needs a hold-out table and a target column)" in v["findings"]
    assert c["membership"]["tested"] is False
    assert "membership inference not tested (needs a hold-out table)" in v["findings"]


@pytest.mark.parametrize(("floor", "beats"), [(0.05, True), (0.03, False), (0.01, False)])
def test_verdict_floor_comparison(floor: float, beats: bool) -> None:
    v = verdict(_results(release=0.03, floor=floor))
    assert v["checks"]["marginals"]["beats_floor"] is beats
    said = "closer than the independent floor" if beats else "no closer than the independent floor"
    assert f"{said} at the same ε ({floor:.3f})" in v["findings"]


def test_verdict_without_floor_has_no_floor_words() -> None:
    v = verdict(_results())
    assert "floor" not in v["findings"] and "beats_floor" not in v["checks"]["marginals"]


@pytest.mark.parametrize(
    ("syn", "band", "words"),
    [(0.90 * UTILITY_CLOSE_PCT / 100, "close", "close to real-data utility"),
     (0.90 * (UTILITY_CLOSE_PCT - 0.5) / 100, "usable", "usable, with some loss"),
     (0.90 * UTILITY_USABLE_PCT / 100, "usable", "usable, with some loss"),
     (0.90 * (UTILITY_USABLE_PCT - 0.5) / 100, "low", "well below real-data utility")],
)  # fmt: skip
def test_verdict_utility_bands(syn: float, band: str, words: str) -> None:
    v = verdict(_results(syn_auc=syn, real_auc=0.90))
    u = v["checks"]["utility"]
    assert u["band"] == band
    assert u["pct"] == pytest.approx(100 * syn / 0.90)
    assert f"reaches {100 * syn / 0.90:.0f}% of the real-data ROC AUC" in v["findings"]
    assert words in v["findings"]


def test_verdict_utility_without_auc() -> None:
    v = verdict(_results(syn_auc=None))
    assert v["checks"]["utility"]["band"] == "no AUC"
    assert "no ROC AUC could be computed" in v["findings"]


@pytest.mark.parametrize(
    ("attacks", "signal"),
    [({"dcr": (MIA_MAX_AUC, MIA_MAX_TPR_1PCT)}, False),
     ({"dcr": (MIA_MAX_AUC + 0.01, 0.0), "classifier": (0.5, 0.0)}, True),
     ({"dcr": (0.5, MIA_MAX_TPR_1PCT + 0.001)}, True)],
)  # fmt: skip
def test_verdict_membership(attacks: dict[str, tuple[float, float]], signal: bool) -> None:
    v = verdict(_results(attacks=attacks))
    m = v["checks"]["membership"]
    assert m["signal"] is signal
    assert m["max_auc"] == max(a for a, _ in attacks.values())
    if signal:
        assert "membership signal seen: the distance to closest record attack" in v["findings"]
        assert "no membership signal" not in v["findings"]
    else:
        assert (
            "no membership signal detected (highest attack AUC 0.550, highest TPR at 1% FPR 2.0%)"
            in v["findings"]
        )


def test_verdict_guarantee_kinds(privacy_reports: dict[str, dict[str, Any]]) -> None:
    r = _results()
    assert "No privacy report was given" in verdict(r)["guarantee"]
    for name in ("independent", "aim", "lipschitz_vae"):
        g = verdict(r, privacy_reports[name])
        assert g["checks"]["guarantee"]["end_to_end"] is True, name
        assert "is end-to-end DP at ε = 5.10, δ = 1.00 × 10⁻⁵ (replace-one adjacency" in g["guarantee"], name
        assert "NOT" not in g["guarantee"] and "seeded" not in g["guarantee"], name
    paper = verdict(r, privacy_reports["lipschitz_vae_paper"])
    assert paper["checks"]["guarantee"]["end_to_end"] is False
    assert "is NOT end-to-end DP" in paper["guarantee"] and "does not cover training" in paper["guarantee"]
    assert "nominal ε = 5.10" in paper["guarantee"]
    inferred = verdict(r, privacy_reports["inferred"])
    assert "is NOT end-to-end DP" in inferred["guarantee"]
    assert "column domains, which were read off the private data" in inferred["guarantee"]
    seeded = verdict(r, privacy_reports["slicing_seeded"])
    assert "seeded (research only)" in seeded["guarantee"]
    unknown = verdict(r, {"backend": "x", "epsilon": 1.0, "delta": 1e-6})
    assert (
        "does not say whether the guarantee is end-to-end, so treat it as NOT end-to-end DP"
        in unknown["text"]
    )


def test_verdict_text_is_two_sentences_with_rules() -> None:
    v = verdict(_results(), AIM_REPORT)
    assert v["text"] == f"{v['guarantee']} {v['findings']}"
    assert v["findings"].startswith("2-way marginals") and v["findings"].endswith(".")
    assert v["rules"] == VERDICT_RULES and len(VERDICT_RULES) == 5
    assert set(v["checks"]) == {"guarantee", "marginals", "utility", "membership"}


# -- the report: verdict at the top, privacy sentences, comparison rows --------------------------------


def test_verdict_at_the_top_and_in_the_json(
    compared: tuple[EvaluationReport, Any], compared_page: str
) -> None:
    rep, _ = compared
    page = compared_page
    at = page.index('<div class="verdict"')
    assert page.index("</h1>") < at < page.index("<h2>")
    assert page.index('<p class="private"') < page.index("<h1>")
    v = json.loads(rep.to_json())["verdict"]
    assert v == rep["verdict"]
    assert html.escape(v["findings"]) in page
    for rule in v["rules"]:
        assert html.escape(rule) in page
    assert v["checks"]["marginals"]["ratio"] == pytest.approx(
        rep["marginals"]["two_way"]["mean"] / rep["marginals_holdout_baseline"]["two_way"]["mean"]
    )


def test_cached_figures_make_the_same_page(
    compared: tuple[EvaluationReport, Any],
    compared_page: str,
    compared_figures: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What lets test_privacy_sentences reuse the figures: drawn again, they are the same bytes."""
    monkeypatch.setattr(EvaluationReport, "figures", lambda self: compared_figures)
    assert compared[0].to_html() == compared_page


@pytest.mark.parametrize(
    "name", ["independent", "aim", "slicing_seeded", "lipschitz_vae", "lipschitz_vae_paper", "inferred"]
)
def test_privacy_sentences(
    compared: tuple[EvaluationReport, Any],
    compared_figures: dict[str, bytes],
    privacy_reports: dict[str, Any],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rep, _ = compared
    p = privacy_reports[name]
    # The same results: the same figures (rendered once for the six reports); the page is built whole.
    monkeypatch.setattr(EvaluationReport, "figures", lambda self: compared_figures)
    page = EvaluationReport(rep.results, privacy=p).to_html()
    words = _privacy_sentences(page)
    # No Python reprs, no float reprs (the backends' own texts round to at most 6 decimals).
    for bad in ("True", "False", "None", "['", "[[", "{'"):
        assert bad not in words, (name, bad)
    assert not re.search(r"\d\.\d{7,}", words), name
    eps = fmt_sig(p["epsilon"])
    assert f"ε = {eps}" in words and "δ = 1.00 × 10⁻⁵" in words
    released = f"a synthetic table of {p['rows_out']:,} rows sampled by the {p['backend']} backend"
    assert f"What was released: {released}" in words
    assert "Adjacency: replace-one (two tables are neighbours" in words
    assert f"Mechanism: {p['mechanism']}." in words and f"Accountant: {p['accountant']}." in words
    for item in p["not_covered"]:
        assert item in words
    if p["end_to_end_dp"]:
        assert f"Guarantee: end-to-end (ε, δ)-differential privacy with ε = {eps}" in words
        assert "NOT end-to-end" not in words
    else:
        assert "Guarantee: NOT end-to-end" in words
        assert "end-to-end (ε, δ)" not in words  # a partial guarantee is never called (ε, δ)-DP
    if name == "lipschitz_vae_paper":
        assert "it does not cover training" in words
    if name == "inferred":
        assert "Column domains: inferred from the private data (not covered by the guarantee)." in words
    assert ("Seeded (research only)" in words) is (p["seeded"] is True)
    # The machine-readable report sits beside the sentences, pretty-printed and whole.
    pre = page[page.index("<details>") : page.index("</details>")]
    raw = html.unescape(pre[pre.index("<pre>") + 5 : pre.index("</pre>")])
    assert json.loads(raw) == json.loads(json.dumps(p))
    assert '\n  "backend"' in raw


def test_comparison_rows(compared: tuple[EvaluationReport, Any], compared_page: str) -> None:
    rep, _ = compared
    f = rep["floor"]
    assert f["note"] == FLOOR_NOTE and f["backend"] == "independent" and f["epsilon"] == 2.5
    assert f["n_rows"] == 600
    assert set(f["marginals"]) == {"one_way", "two_way", "three_way"}
    assert 0 < f["marginals"]["two_way"]["mean"] <= f["marginals"]["two_way"]["max"] <= 1
    assert set(f["utility"]) == {"logistic_regression"}
    assert set(f["membership"]) == set(rep["membership"]["attacks"])
    assert "sdmetrics" not in f  # sdmetrics=False: not for the release, not for the floor
    page = compared_page
    label = "independent floor at ε = 2.50 (evaluation only, not released)"
    marg = _section(page, "<h2>1. Marginals</h2>")
    assert "hold-out baseline: real hold-out rows (sampling noise)" in marg and label in marg
    assert f"<td>{f['marginals']['two_way']['mean']:.3f}</td>" in marg
    assert html.escape(FLOOR_NOTE) in marg
    util = _section(page, "<h2>2. Utility")
    assert f"trained on the {label}" in util
    assert f"<td>{f['utility']['logistic_regression']['accuracy']:.3f}</td>" in util
    mem = page[page.index("<h2>3. Membership inference</h2>") :]
    assert mem.count(label) == len(f["membership"])
    assert "not differentially private" not in FLOOR_NOTE.lower()


def test_floor_sdmetrics_column() -> None:
    rep = evaluate(
        draw(300, 1), draw(300, 3), SCHEMA, holdout=draw(300, 2), target="label", n_attack=100,
        floor=draw(300, 4), floor_info={"epsilon": 1.0},
    )  # fmt: skip
    fsd = rep["floor"]["sdmetrics"]
    assert 0 < fsd["quality_score"] <= 1 and set(fsd["properties"]) == set(rep["sdmetrics"]["properties"])
    sec = _section(rep.to_html(), "<h2>SDMetrics</h2>")
    assert "<th>independent floor at ε = 1.00 (evaluation only, not released)</th>" in sec
    assert f"<td>{rep['sdmetrics']['quality_score']:.3f}</td><td>{fsd['quality_score']:.3f}</td>" in sec


def test_floor_is_checked(compared: tuple[EvaluationReport, Any]) -> None:
    with pytest.raises(DataValidationError, match="floor table's columns differ"):
        evaluate(draw(200, 1), draw(200, 3), SCHEMA, sdmetrics=False, floor=draw(200, 4).drop(columns="age"))
    with pytest.raises(DataValidationError, match="floor table has no rows"):
        evaluate(draw(200, 1), draw(200, 3), SCHEMA, sdmetrics=False, floor=draw(200, 4).iloc[:0])


def test_without_floor_no_floor_rows() -> None:
    rep = evaluate(draw(300, 1), draw(300, 3), SCHEMA, holdout=draw(300, 2), sdmetrics=False, n_attack=100)
    assert "floor" not in rep.results
    page = rep.to_html()
    assert "independent floor at" not in page and "evaluation only, not released" not in page


def test_progress_callback(compared: tuple[EvaluationReport, Any]) -> None:
    _, calls = compared
    # sdmetrics=False: that phase is left out of the total.
    expected = [p for p in EVALUATION_PHASES if p != "sdmetrics"]
    w = PHASE_WEIGHTS
    # Work units, not phase counts: the floor repeats discretize + marginals, utility and membership,
    # and reports after each of its steps.
    rest = w["discretize"] + w["marginals"] + w["utility"] + w["membership"]
    total = 2 * rest
    steps = [
        rest + w["discretize"] + w["marginals"],
        rest + w["discretize"] + w["marginals"] + w["utility"],
        total,
    ]
    assert calls == [
        ("discretize", 0, total),
        ("marginals", w["discretize"], total),
        ("utility", w["discretize"] + w["marginals"], total),
        ("membership", w["discretize"] + w["marginals"] + w["utility"], total),
        ("floor", rest, total),
        *[("floor", s, total) for s in steps],
        ("done", total, total),
    ]
    assert [c[0] for c in calls if c[0] != "floor"] == [p for p in expected if p != "floor"] + ["done"]
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(calls))  # never goes back
    assert set(EVALUATION_PHASE_LABELS) == {*EVALUATION_PHASES, "done"}
    assert set(PHASE_WEIGHTS) == set(EVALUATION_PHASES) - {"floor"}


def test_progress_without_holdout_or_floor() -> None:
    calls: list[tuple[str, int, int]] = []
    evaluate(draw(200, 1), draw(200, 3), SCHEMA, sdmetrics=False, progress=lambda *a: calls.append(a))
    w = PHASE_WEIGHTS
    total = w["discretize"] + w["marginals"] + w["membership"]
    assert calls == [
        ("discretize", 0, total),
        ("marginals", w["discretize"], total),
        ("membership", w["discretize"] + w["marginals"], total),
        ("done", total, total),
    ]


# -- the floor builder (CLI layer) -------------------------------------------------------------------


def test_independent_floor(privacy_reports: dict[str, dict[str, Any]]) -> None:
    real = draw(300, 1)
    t1, info = independent_floor(real, SCHEMA, 123, privacy_report=privacy_reports["lipschitz_vae"], seed=7)
    assert isinstance(t1, pd.DataFrame) and len(t1) == 123 and list(t1.columns) == SCHEMA.names
    assert info["epsilon"] == privacy_reports["lipschitz_vae"]["epsilon"] and info["delta"] == 1e-5
    assert info["epsilon_source"] == "the release's privacy report" and info["seed"] == 7
    t2, _ = independent_floor(real, SCHEMA, 123, privacy_report=privacy_reports["lipschitz_vae"], seed=7)
    pd.testing.assert_frame_equal(t1, t2)  # seeded from the evaluation's random_state
    _, default = independent_floor(real, SCHEMA, 10)
    assert default["epsilon"] == DEFAULT_FLOOR_EPSILON and "default" in default["epsilon_source"]


def test_cli_floor_on_by_default_and_off_switch(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(evaluate_command)
    paths = {k: tmp_path / f"{k}.csv" for k in ("train", "hold", "syn")}
    for k, seed in zip(paths, (1, 2, 3), strict=True):
        draw(300, seed).to_csv(paths[k], index=False)
    schema = tmp_path / "s.schema.json"
    SCHEMA.to_json(schema)
    priv = tmp_path / "p.json"
    priv.write_text(json.dumps(AIM_REPORT))
    base = [str(paths["train"]), str(paths["syn"]), "--schema", str(schema), "--holdout", str(paths["hold"]),
            "--target", "label", "--no-sdmetrics", "--privacy-report", str(priv)]  # fmt: skip
    for extra, has_floor in (([], True), (["--no-floor"], False)):
        out, js = tmp_path / "r.html", tmp_path / "r.json"
        res = CliRunner().invoke(app, [*base, "-o", str(out), "--json", str(js), *extra])
        assert res.exit_code == 0, res.output
        d = json.loads(js.read_text())
        assert ("floor" in d) is has_floor
        if has_floor:
            assert d["floor"]["epsilon"] == AIM_REPORT["epsilon"] and d["floor"]["n_rows"] == 300
            assert "independent floor at ε = 5.10" in out.read_text()
