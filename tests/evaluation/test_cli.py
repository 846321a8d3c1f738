from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from tabpriv.cli import app as tabpriv_app
from tabpriv.cli.evaluate import evaluate_command
from tabpriv.evaluation import EVALUATION_NOTICE
from tabpriv.schema import Schema

app = typer.Typer()
app.command()(evaluate_command)


def _files(tmp_path: Path, small_schema: Schema, tables) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    train, hold, syn = tables
    paths = {k: tmp_path / f"{k}.csv" for k in ("train", "hold", "syn")}
    for k, df in zip(("train", "hold", "syn"), (train, hold, syn), strict=True):
        df.to_csv(paths[k], index=False)
    paths["schema"] = tmp_path / "s.schema.json"
    small_schema.to_json(paths["schema"])
    return paths


def test_cli_writes_html_and_json(tmp_path: Path, small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    p = _files(tmp_path, small_schema, tables)
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        [str(p["train"]), str(p["syn"]), "--schema", str(p["schema"]), "--holdout",
         str(p["hold"]), "--target", "label", "-o", str(out), "--json", str(js),
         "--no-sdmetrics"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    d = json.loads(js.read_text())
    assert d["n_rows"] == {"real_train": 1500, "synthetic": 1500, "holdout": 1500}
    assert d["utility"]["target"] == "label"


def test_cli_output_opens_with_the_private_notice(tmp_path: Path, small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    p = _files(tmp_path, small_schema, tables)
    priv = tmp_path / "release.privacy.json"
    priv.write_text(json.dumps({"headline": "(1, 1e-05)-differentially private", "epsilon": 1.0}))
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        [str(p["train"]), str(p["syn"]), "--schema", str(p["schema"]), "--holdout",
         str(p["hold"]), "-o", str(out), "--json", str(js), "--no-sdmetrics",
         "--privacy-report", str(priv)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == EVALUATION_NOTICE
    assert f"Wrote {out} and {js}" in res.output
    d = json.loads(js.read_text())
    assert next(iter(d)) == "notice" and d["differentially_private"] is False
    assert d["release_guarantee"]["epsilon"] == 1.0
    page = out.read_text()
    assert page.index("PRIVATE.") < page.index("<h1") < page.index("<h2>The release's guarantee</h2>")


def test_cli_error_is_one_sentence(tmp_path: Path, small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    p = _files(tmp_path, small_schema, tables)
    pd.read_csv(p["syn"]).drop(columns=["age"]).to_csv(p["syn"], index=False)
    res = CliRunner().invoke(
        app,
        [str(p["train"]), str(p["syn"]), "--schema", str(p["schema"]), "-o",
         str(tmp_path / "r.html"), "--no-sdmetrics"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "age" in res.output
    assert not (tmp_path / "r.html").exists()
    res = CliRunner().invoke(app, [str(tmp_path / "nope.csv"), str(p["syn"]), "--schema", str(p["schema"])])
    assert res.exit_code == 1
    assert "does not exist" in res.output
    assert EVALUATION_NOTICE not in res.output  # no report, no notice: the error stays one sentence


def test_synthesize_evaluate_labels_its_evaluation(tmp_path: Path, small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    p = _files(tmp_path, small_schema, tables)
    out = tmp_path / "syn_out.csv"
    res = CliRunner().invoke(
        tabpriv_app,
        ["synthesize", str(p["train"]), "--schema", str(p["schema"]), "--eps", "2", "-o", str(out),
         "--evaluate", "--holdout", str(p["hold"]), "--target", "label"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    # The notice (on stderr) comes before the release panel that names the evaluation file.
    assert EVALUATION_NOTICE in res.stderr
    assert res.output.index(EVALUATION_NOTICE) < res.output.index("tabpriv release")
    ev = Path(str(out) + ".evaluation.html")
    d = json.loads(Path(str(out) + ".evaluation.json").read_text())
    assert next(iter(d)) == "notice" and d["private"] is True
    release = json.loads(Path(str(out) + ".privacy.json").read_text())
    assert d["release_guarantee"]["headline"] == release["headline"]
    page = ev.read_text()
    assert page.index("PRIVATE.") < page.index("<img")
