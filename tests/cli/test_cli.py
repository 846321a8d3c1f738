"""CLI behaviour: outputs, one-sentence errors (exit 1), untouched inputs, no partial files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tabpriv.cli import app
from tabpriv.datasets import BUNDLED_DIR

from ..conftest import make_small_df, make_small_schema

runner = CliRunner()
ADULT_SCHEMA = str(BUNDLED_DIR / "adult.schema.json")


@pytest.fixture()
def small_files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "small.csv"
    make_small_df(300).to_csv(data, index=False)
    schema = tmp_path / "small.schema.json"
    make_small_schema().to_json(schema)
    return data, schema


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_synthesize_adult_with_schema(tmp_path: Path) -> None:
    out, rep = tmp_path / "out.csv", tmp_path / "r.json"
    res = runner.invoke(
        app,
        ["synthesize", str(BUNDLED_DIR / "adult.csv"), "--schema", ADULT_SCHEMA, "--eps", "5.1",
         "-o", str(out), "--report", str(rep)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    real = pd.read_csv(BUNDLED_DIR / "adult.csv", keep_default_na=False, na_values=[""])
    assert list(df.columns) == list(real.columns)
    assert list(df.dtypes) == list(real.dtypes)
    report = json.loads(rep.read_text())
    assert report["epsilon"] <= 5.1 and report["end_to_end_dp"] is True
    assert report["seeded"] is False
    assert "differentially private" in res.stdout


def test_synthesize_without_arguments_uses_bundled_adult(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = runner.invoke(app, ["synthesize", "--rows", "100"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    out = tmp_path / "adult.synthetic.csv"
    assert len(pd.read_csv(out)) == 100
    assert json.loads((tmp_path / "adult.synthetic.csv.privacy.json").read_text())["epsilon"] <= 5.1


def test_parquet_in_parquet_out(tmp_path: Path, small_files) -> None:
    data, schema = small_files
    pq = tmp_path / "small.parquet"
    pd.read_csv(data).to_parquet(pq)
    out = tmp_path / "o.parquet"
    res = runner.invoke(app, ["synthesize", str(pq), "--schema", str(schema), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert pd.read_parquet(out).shape == (300, 5)


def test_infer_schema_is_labelled(tmp_path: Path, small_files) -> None:
    data, _ = small_files
    out = tmp_path / "o.csv"
    res = runner.invoke(app, ["synthesize", str(data), "--infer-schema", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "not end-to-end differentially private" in res.stderr
    assert "NOT end-to-end DP" in res.stdout
    rep = json.loads(Path(str(out) + ".privacy.json").read_text())
    assert rep["end_to_end_dp"] is False
    assert "not end-to-end DP: domain inferred from the data" in rep["warnings"]


def test_schema_infer_command(tmp_path: Path, small_files) -> None:
    data, _ = small_files
    out = tmp_path / "draft.schema.json"
    res = runner.invoke(app, ["schema", "infer", str(data), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["source"] == "inferred"


def test_backends_command_lists_registry() -> None:
    res = runner.invoke(app, ["backends"])
    assert res.exit_code == 0
    assert "independent" in res.stdout and "(ε, δ)-DP" in res.stdout


def _bad_cases(tmp: Path, data: Path, schema: Path) -> list[tuple[list[str], str]]:
    empty = tmp / "empty.csv"
    empty.write_text("")
    header = tmp / "header.csv"
    header.write_text("color,code,age,score,flag\n")
    dupcol = tmp / "dup.csv"
    dupcol.write_text("color,color,age\nred,red,1\n")
    unknown = tmp / "unknown.csv"
    make_small_df(50).assign(extra=1).to_csv(unknown, index=False)
    missing_col = tmp / "missing_col.csv"
    make_small_df(50).drop(columns="flag").to_csv(missing_col, index=False)
    oob = tmp / "oob.csv"
    make_small_df(50).assign(age=lambda d: d["age"].where(d.index != 3, 1000)).to_csv(oob, index=False)
    nan = tmp / "nan.csv"
    make_small_df(50).assign(age=lambda d: d["age"].astype(float).where(d.index != 2)).to_csv(
        nan, index=False
    )
    text = tmp / "text.csv"
    make_small_df(50).astype({"age": object}).assign(
        age=lambda d: d["age"].where(d.index != 1, "old")
    ).to_csv(text, index=False)
    out = str(tmp / "o.csv")
    s = ["--schema", str(schema)]
    return [
        (["synthesize", str(empty), *s, "-o", out], "is empty"),
        (["synthesize", str(header), *s, "-o", out], "no rows"),
        (["synthesize", str(dupcol), *s, "-o", out], "Duplicate column"),
        (["synthesize", str(unknown), *s, "-o", out], "not in the schema: 'extra'"),
        (["synthesize", str(missing_col), *s, "-o", out], "not in the data: 'flag'"),
        (["synthesize", str(oob), *s, "-o", out], "'age' has 1 value.*1000"),
        (["synthesize", str(nan), *s, "-o", out], "missing value"),
        (["synthesize", str(text), *s, "-o", out], "not numbers.*'old'"),
        (["synthesize", str(data), *s, "--eps", "0", "-o", out], "epsilon"),
        (["synthesize", str(data), *s, "--eps", "nan", "-o", out], "epsilon"),
        (["synthesize", str(data), *s, "--eps", "inf", "-o", out], "epsilon"),
        (["synthesize", str(data), *s, "--delta", "0.5", "-o", out], "delta"),
        (["synthesize", str(data), *s, "--delta", "0", "-o", out], "delta"),
        (["synthesize", str(data), *s, "--rows", "0", "-o", out], "--rows"),
        (["synthesize", str(data), *s, "-o", str(tmp / "no" / "such" / "o.csv")], "does not exist"),
        (["synthesize", str(data), *s, "-o", str(tmp / "o.xlsx")], "format"),
        (["synthesize", str(data), "-o", out], "No schema given"),
        (["synthesize", str(tmp / "nope.csv"), *s, "-o", out], "does not exist"),
        (["synthesize", str(data), *s, "--backend", "nope", "-o", out], "Unknown backend"),
    ]


def test_bad_input_one_sentence_no_partial_output(tmp_path: Path, small_files) -> None:
    data, schema = small_files
    before = _digest(data)
    for args, fragment in _bad_cases(tmp_path, data, schema):
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert "Traceback" not in res.output
        import re

        assert re.search(fragment, res.stderr, re.S), (args, res.stderr)
        assert not (tmp_path / "o.csv").exists(), args
        assert not list(tmp_path.glob("*.part")), args
    assert _digest(data) == before


def test_clip_option(tmp_path: Path, small_files) -> None:
    _, schema = small_files
    oob = tmp_path / "oob.csv"
    make_small_df(60).assign(age=lambda d: d["age"].where(d.index != 3, 1000)).to_csv(oob, index=False)
    out = tmp_path / "o.csv"
    res = runner.invoke(app, ["synthesize", str(oob), "--schema", str(schema), "--clip", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(Path(str(out) + ".privacy.json").read_text())
    assert "clipped_values" not in report  # exact counts are private: never released
    assert any("not released" in c for c in report["covered"])


def test_real_process_error_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tabpriv", "synthesize", str(tmp_path / "x.csv"),
         "--schema", ADULT_SCHEMA],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("Error:") and "does not exist" in res.stderr


def test_subsampled_slicing_shows_unamplified_epsilon(tmp_path: Path, small_files) -> None:
    """The CLI panel states the un-amplified epsilon next to the amplified guarantee."""
    data, schema = small_files
    out = tmp_path / "out.csv"
    report = tmp_path / "report.json"
    params = ["n_slices=8", "steps=5", "batch_size=64", "real_batch=32", "hidden=32", "subsample=0.5"]
    args = ["synthesize", str(data), "--schema", str(schema), "--backend", "slicing", "--seed", "0"]
    args += [a for p in params for a in ("-p", p)]
    res = runner.invoke(app, [*args, "-o", str(out), "--report", str(report)], terminal_width=200)
    assert res.exit_code == 0, res.output
    rep = json.loads(report.read_text())
    unamplified = rep["extra"]["epsilon_unamplified"]
    assert unamplified > rep["epsilon"]
    assert "Un-amplified" in res.output
    assert f"{unamplified:.4f}" in res.output
