from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from tabpriv.errors import DataValidationError, TabprivError
from tabpriv.evaluation import EVALUATION_NOTICE, METRIC_DEFINITIONS, EvaluationReport, evaluate
from tabpriv.schema import Schema

from .conftest import draw, make_schema

#: Tolerance on the AUC of attacks against an independent draw: 1000 members / 1000 non-members
#: give an AUC standard error of about 0.013; 0.06 is about 4.5 standard errors.
AUC_TOL = 0.06


@pytest.fixture(scope="module")
def copy_report() -> EvaluationReport:
    """One evaluation of a verbatim copy of the training table (``tables``' train and hold-out) with a
    target, 500 attacked members and SDMetrics: what the self, copy and SDMetrics tests each check.

    (Those three tests evaluated the same tables three times; the membership figures do not depend on
    the target or on SDMetrics, which run on their own seeds.)
    """
    train, hold = draw(1500, 1), draw(1500, 2)
    return evaluate(train, train.copy(), make_schema(), holdout=hold, target="label", n_attack=500)


def test_real_vs_itself(copy_report: EvaluationReport) -> None:
    rep = copy_report
    mg = rep["marginals"]
    for key in ("one_way", "two_way", "three_way"):
        assert mg[key]["max"] == 0.0
    assert rep["out_of_schema"]["total"] == 0
    u = rep["utility"]["models"]["logistic_regression"]
    assert u["synthetic"] == pytest.approx(u["real"])


def test_copy_of_training_data_is_caught(copy_report: EvaluationReport) -> None:
    rep = copy_report
    assert rep["membership"]["n_members"] == 500
    em = rep["membership"]["exact_match"]
    assert em["synthetic_in_train"] == 1.0
    assert em["members_copied"] == 1.0
    assert em["non_members_copied"] == 0.0  # continuous income: no natural duplicates
    dcr = rep["membership"]["attacks"]["dcr"]
    assert dcr["auc"] >= 0.99
    assert dcr["tpr_at_fpr_1pct"] >= 0.99
    # The density and classifier attacks are weaker against verbatim copies than DCR (they smooth
    # over neighbours) but still clearly above chance (measured: 0.654 and 0.661 with this seed).
    assert rep["membership"]["attacks"]["density_ratio"]["auc"] > 0.6
    assert rep["membership"]["attacks"]["classifier"]["auc"] > 0.6


def test_independent_draw_attacks_near_chance(small_schema: Schema) -> None:
    train, hold, syn = draw(3000, 11), draw(3000, 12), draw(3000, 13)
    rep = evaluate(train, syn, small_schema, holdout=hold, sdmetrics=False, n_attack=1000)
    attacks = rep["membership"]["attacks"]
    assert set(attacks) == {"dcr", "density_ratio", "classifier"}
    for name, a in attacks.items():
        assert abs(a["auc"] - 0.5) < AUC_TOL, name
        assert 0.0 <= a["tpr_at_fpr_1pct"] <= 0.05, name
    assert rep["membership"]["exact_match"]["synthetic_in_train"] == 0.0


def test_out_of_schema_synthetic_values_reported(small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    train, hold, syn = tables
    syn = syn.copy()
    syn.loc[:9, "colour"] = "purple"
    syn["income"] = syn["income"].astype(float)
    syn.loc[10:14, "income"] = 250.0
    rep = evaluate(train, syn, small_schema, holdout=hold, target="label", sdmetrics=False, n_attack=300)
    assert rep["out_of_schema"]["per_column"] == {"colour": 10, "income": 5}
    assert rep["out_of_schema"]["total"] == 15
    assert rep["n_rows"]["synthetic"] == len(syn)
    labels = rep["distributions"]["colour"]["labels"]
    assert "(out of schema)" in labels
    share = rep["distributions"]["colour"]["synthetic"][labels.index("(out of schema)")]
    assert share == pytest.approx(10 / len(syn))


def test_report_outputs(labelled: EvaluationReport, labelled_page: tuple[str, Path], tmp_path: Path) -> None:
    rep = labelled
    assert isinstance(rep, EvaluationReport)
    rep.to_json(tmp_path / "r.json")
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["release_guarantee"]["epsilon"] == 1.0
    assert set(d["definitions"]) == set(METRIC_DEFINITIONS)
    assert "hist_gradient_boosting" in d["utility"]["models"]
    page, path = labelled_page
    assert page == path.read_text()
    assert page.count("data:image/png;base64,") == 4  # distributions, worst pairs, TVD heatmap, ROC
    assert "<h2>The release's guarantee</h2>" in page
    for key in ("tvd", "dcr", "density_ratio", "classifier", "utility", "exact_match"):
        assert METRIC_DEFINITIONS[key][:40].replace("'", "&#x27;") in page
    figs = rep.figures()
    assert all(v[:8] == b"\x89PNG\r\n\x1a\n" for v in figs.values())
    assert set(figs) == {"distributions", "tvd_heatmap", "worst_pairs", "mia_roc"}


# -- labels: every artefact says it is private, and the privacy report is the release's ---------------

#: A release's privacy report as the synthesizer writes it (the fields the page shows).
PRIV = {
    "headline": "(1, 1e-05)-differentially private (replace-one adjacency; PRV)",
    "backend": "independent",
    "guarantee_text": "(ε, δ)-DP of the whole release, training included",
    "epsilon": 1.0,
    "delta": 1e-5,
    "mechanism": "Gaussian",
    "adjacency": "replace-one",
    "end_to_end_dp": True,
}


@pytest.fixture(scope="module")
def labelled() -> EvaluationReport:
    """``tables``' evaluation with a hold-out, a target, HistGradientBoosting and a release's report."""
    train, hold, syn = draw(1500, 1), draw(1500, 2), draw(1500, 3)
    return evaluate(
        train, syn, make_schema(), holdout=hold, target="label", sdmetrics=False, n_attack=300,
        privacy_report=PRIV, hgb=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def labelled_page(labelled: EvaluationReport, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``labelled.to_html(path)``, rendered once (the figures take seconds) for every test of the page."""
    path = tmp_path_factory.mktemp("labelled") / "r.html"
    return labelled.to_html(path), path


@pytest.fixture(scope="module")
def no_holdout() -> EvaluationReport:
    """``tables``' evaluation without a hold-out, a target or a release's report."""
    return evaluate(draw(1500, 1), draw(1500, 3), make_schema(), sdmetrics=False)


@pytest.fixture(scope="module")
def no_holdout_page(no_holdout: EvaluationReport) -> str:
    """``no_holdout.to_html()``, rendered once."""
    return no_holdout.to_html()


def test_html_opens_with_the_private_notice(labelled_page: tuple[str, Path]) -> None:
    page, _ = labelled_page
    body = page[page.index("<body>") + len("<body>") :].lstrip()
    banner = f'<p class="private" role="alert"><b>PRIVATE.</b> {html.escape(EVALUATION_NOTICE)}</p>'
    assert body.startswith(banner)
    at = page.index(banner)
    for tag in ("<img", "<table", "<h1", "<h2"):
        assert at < page.index(tag), tag
    title = page[page.index("<title>") : page.index("</title>")]
    assert "PRIVATE" in title and "not differentially private" in title and "data owner only" in title
    assert "NOT differentially private" in EVALUATION_NOTICE and "data owner only" in EVALUATION_NOTICE


def test_json_opens_with_the_notice_and_holds_the_release_guarantee(labelled: EvaluationReport) -> None:
    d = json.loads(labelled.to_json())
    assert list(d)[:3] == ["notice", "private", "differentially_private"]
    assert d["notice"] == EVALUATION_NOTICE
    assert d["private"] is True and d["differentially_private"] is False
    assert "privacy_report" not in d
    assert d["release_guarantee"] == PRIV
    assert "release's guarantee" in d["release_guarantee_note"]
    assert list(labelled.to_dict()) == list(d)  # to_dict() has the same keys in the same order


def test_privacy_report_shown_only_as_the_release_guarantee(labelled_page: tuple[str, Path]) -> None:
    page, _ = labelled_page
    head = "<h2>The release's guarantee</h2>"
    assert page.count(head) == 1
    start = page.index(head)
    end = page.index("<h2>", start + len(head))
    section, outside = page[start:end], page[:start] + page[end:]
    assert "(ε, δ)-DP" in section and html.escape(PRIV["headline"]) in section
    assert "(ε, δ)-DP" not in outside
    # Outside that section the page never calls itself differentially private, only "not" so.
    low = outside.lower()
    assert low.count("differentially private") == low.count("not differentially private") >= 2


def test_without_privacy_report_no_guarantee_is_shown(
    no_holdout: EvaluationReport, no_holdout_page: str
) -> None:
    rep, page = no_holdout, no_holdout_page
    assert "release's guarantee" not in page and "(ε, δ)-DP" not in page
    assert EVALUATION_NOTICE[:60] in html.unescape(page)
    d = rep.to_dict()
    assert next(iter(d)) == "notice" and "release_guarantee" not in d


def test_without_holdout_skips_utility_and_attacks(
    no_holdout: EvaluationReport, no_holdout_page: str
) -> None:
    rep = no_holdout
    assert "skipped" in rep["utility"]
    assert "skipped" in rep["membership"]
    assert rep["membership"]["exact_match"]["synthetic_in_train"] == 0.0
    assert "<html" in no_holdout_page


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.drop(columns=["age"]), "missing 'age'"),
        (lambda s: s.assign(extra=1), "not in the schema: 'extra'"),
        (lambda s: s.iloc[:0], "no rows"),
        (lambda s: s.assign(age="old"), "not numbers"),
        (lambda s: s.assign(colour=1.5), "holds numbers"),
    ],
)
def test_bad_synthetic(small_schema: Schema, tables, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    train, hold, syn = tables
    with pytest.raises(DataValidationError, match=message):
        evaluate(train, mutate(syn), small_schema, holdout=hold, sdmetrics=False)


def test_bad_target_and_holdout(small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    train, hold, syn = tables
    with pytest.raises(DataValidationError, match="not in the schema"):
        evaluate(train, syn, small_schema, holdout=hold, target="nope", sdmetrics=False)
    with pytest.raises(DataValidationError, match="constant"):
        evaluate(train.assign(label="no"), syn, small_schema, holdout=hold, target="label", sdmetrics=False)
    with pytest.raises(DataValidationError, match="has 150 rows.*need at least 200"):
        evaluate(train, syn, small_schema, holdout=hold.iloc[:150], sdmetrics=False)
    with pytest.raises(DataValidationError, match="n_attack=5000"):
        evaluate(train, syn, small_schema, holdout=hold, sdmetrics=False, n_attack=5000)
    bad_real = train.copy()
    bad_real.loc[0, "age"] = 200
    with pytest.raises(TabprivError, match="outside the declared bounds"):
        evaluate(bad_real, syn, small_schema, holdout=hold, sdmetrics=False)


def test_synthetic_with_single_class_is_scored(small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    train, hold, syn = tables
    rep = evaluate(
        train,
        syn.assign(label="no"),
        small_schema,
        holdout=hold,
        target="label",
        sdmetrics=False,
        n_attack=300,
    )
    u = rep["utility"]
    lr = u["models"]["logistic_regression"]
    assert lr["synthetic"]["accuracy"] == pytest.approx(lr["majority"]["accuracy"])
    assert any("single target class" in n for n in u["notes"])


def test_sdmetrics_figures(copy_report: EvaluationReport) -> None:
    sd = copy_report["sdmetrics"]
    assert "error" not in sd
    assert sd["quality_score"] == pytest.approx(1.0)
    for k in ("KSComplement", "TVComplement", "ContingencySimilarity", "CorrelationSimilarity"):
        assert sd[k] == pytest.approx(1.0), k
    assert 0.0 < sd["BinaryLogisticRegression"] <= 1.0


def test_sdmetrics_failure_does_not_break(small_schema: Schema, tables, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sdmetrics.reports

    class Boom:
        def generate(self, *a: object, **k: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(sdmetrics.reports, "QualityReport", Boom)
    train, hold, syn = tables
    rep = evaluate(train, syn, small_schema, holdout=hold, target="label", n_attack=300)
    assert "boom" in rep["sdmetrics"]["error"]
    assert rep["marginals"]["two_way"]["mean"] > 0
    assert "boom" in rep.to_html()


# -- Adult ------------------------------------------------------------------------------------------

ADULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "adult"
COLS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
        "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
        "native-country", "income"]  # fmt: skip


def _adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not (ADULT_DIR / "adult.data").exists():
        pytest.skip("shared Adult data not available")
    kw = {"header": None, "names": COLS, "skipinitialspace": True, "na_values": "?"}
    train = pd.read_csv(ADULT_DIR / "adult.data", **kw)
    test = pd.read_csv(ADULT_DIR / "adult.test", skiprows=1, **kw)
    test["income"] = test["income"].str.rstrip(".")
    return train, test


def test_adult_utility_ceiling_matches_plain_sklearn() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, test = _adult()
    schema = Schema.infer(pd.concat([train, test]), warn=False)
    syn = train.sample(2000, random_state=0)
    rep = evaluate(train, syn, schema, holdout=test, target="income", sdmetrics=False, n_attack=200)
    got = rep["utility"]["models"]["logistic_regression"]["real"]

    cat = [c for c in COLS[:-1] if train[c].dtype == object]
    num = [c for c in COLS[:-1] if c not in cat]

    def features(df: pd.DataFrame) -> pd.DataFrame:
        out = df[cat + num].copy()
        out[cat] = out[cat].fillna("(missing)")
        return out

    model = make_pipeline(
        ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), cat),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ]),
        LogisticRegression(max_iter=1000, random_state=0),
    )  # fmt: skip
    model.fit(features(train), train["income"])
    proba = model.predict_proba(features(test))[:, list(model.classes_).index(">50K")]
    pred = model.predict(features(test))
    assert got["accuracy"] == pytest.approx(accuracy_score(test["income"], pred), abs=1e-9)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(test["income"] == ">50K", proba), abs=1e-9)
    assert got["f1"] == pytest.approx(f1_score(test["income"], pred, pos_label=">50K"), abs=1e-9)
    assert 0.84 < got["accuracy"] < 0.87  # the published ceiling for logistic regression on Adult
    floor = rep["utility"]["models"]["logistic_regression"]["majority"]
    assert floor["accuracy"] == pytest.approx((test["income"] == "<=50K").mean())
    assert rep["utility"]["positive_class"] == ">50K"
