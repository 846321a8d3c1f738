"""backend='auto' (the default): the rule, and one real fit through it."""

from __future__ import annotations

import warnings

import pytest

from tabpriv import Synthesizer
from tabpriv.backends.auto import AIM_MAX_COLUMNS, choose_backend
from tabpriv.schema import Column, Schema
from tabpriv.transformers.table import TableTransformer

from ..conftest import make_small_df, make_small_schema

pytestmark = pytest.mark.real_auto_backend


def _spans(schema: Schema) -> tuple:
    return TableTransformer(schema).fit().spans_


def _wide_schema(n: int) -> Schema:
    return Schema(tuple(Column(f"c{i}", "categorical", categories=("a", "b")) for i in range(n)))


def test_default_backend_is_auto() -> None:
    assert Synthesizer().backend == "auto"


def test_rule_aim_for_narrow_tables_mst_for_wide_ones() -> None:
    name, why = choose_backend(_spans(_wide_schema(AIM_MAX_COLUMNS)))
    assert name == "aim" and f"{AIM_MAX_COLUMNS} columns" in why
    name, why = choose_backend(_spans(_wide_schema(AIM_MAX_COLUMNS + 1)))
    assert name == "mst" and str(AIM_MAX_COLUMNS + 1) in why


def test_rule_falls_back_to_independent_when_a_column_exceeds_the_model_size_limit() -> None:
    schema = Schema(
        (
            Column("zip", "categorical", categories=tuple(f"z{i}" for i in range(60))),
            Column("flag", "categorical", categories=("y", "n")),
        )
    )
    name, why = choose_backend(_spans(schema), {"max_cells": 50})
    assert name == "independent" and "zip" in why and "50" in why


def test_rule_reads_the_schema_only() -> None:
    # the same spans give the same choice whatever the rows: the function never sees them
    spans = _spans(make_small_schema())
    assert choose_backend(spans) == choose_backend(spans)


def test_auto_fit_uses_aim_and_the_report_says_why() -> None:
    synth = Synthesizer(
        epsilon=2.0,
        schema=make_small_schema(),
        random_state=0,
        backend_params={"iters": 100, "round_iters": 25, "rounds": 6},
        target="color",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synth.fit(make_small_df(300))
    assert synth.backend_name_ == "aim"
    assert synth.backend_.target == "color"  # Synthesizer(target=) reaches the backend that takes one
    rep = synth.privacy_report
    assert "target 'color'" in rep.mechanism
    assert rep.backend == "aim"
    assert rep.extra["backend_choice"].startswith("auto: 'aim'")
    assert len(synth.sample(20)) == 20


def test_auto_with_a_parameter_the_chosen_backend_lacks_fails_before_spending() -> None:
    from tabpriv.errors import PrivacyParameterError

    synth = Synthesizer(epsilon=2.0, schema=make_small_schema(), backend_params={"hidden_dim": 8})
    with pytest.raises(PrivacyParameterError, match="auto"):
        synth.fit(make_small_df(50))
    assert not hasattr(synth, "ledger_") or synth.ledger_.epsilon_spent == 0


def test_html_report_names_the_backend_and_why() -> None:
    from tabpriv.evaluation.report import EvaluationReport

    privacy = {
        "backend": "aim",
        "extra": {"backend_choice": "auto: 'aim' (adaptive noisy marginals), 7 columns"},
    }
    page = EvaluationReport({}, privacy=privacy)._html_privacy()
    assert "the aim backend (auto: &#x27;aim&#x27; (adaptive noisy marginals), 7 columns)" in page


def test_cli_panel_names_the_backend_and_why(tmp_path) -> None:
    from typer.testing import CliRunner

    from tabpriv.cli import app

    df = make_small_df(200)
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    schema = tmp_path / "s.schema.json"
    make_small_schema().to_json(schema)
    res = CliRunner().invoke(
        app,
        ["synthesize", str(src), "--schema", str(schema), "--eps", "2", "--seed", "0",
         "-o", str(tmp_path / "o.csv"),
         "--param", "iters=50", "--param", "round_iters=10", "--param", "rounds=6"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "aim" in res.output and "auto:" in res.output


def test_target_is_ignored_by_a_backend_without_one() -> None:
    synth = Synthesizer(backend="independent", epsilon=2.0, schema=make_small_schema(), target="color")
    assert "target" not in synth._make_backend().get_params()
