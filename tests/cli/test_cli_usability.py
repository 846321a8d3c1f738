"""CLI usability (issue 17 items 5, 8, 9): help and tables at 80 columns, --columns/--drop, progress,
file modes, the evaluation sidecar's name."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.cli import app
from tabpriv.cli.app import _phase, evaluation_json_path
from tabpriv.errors import DataValidationError
from tabpriv.synthesizer import Synthesizer, select_columns

from ..conftest import make_small_df, make_small_schema

ENV = {"COLUMNS": "80", "TERM": "dumb"}
runner = CliRunner()


def _run(args: list[str]) -> object:
    return runner.invoke(app, args, env=ENV)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A small table with one column the schema does not declare ('note'), its schema, a hold-out."""
    data = make_small_df(300, seed=1)
    data["note"] = [f"free text {i}" for i in range(len(data))]
    paths = {
        "data": tmp_path / "small.csv",
        "schema": tmp_path / "small.schema.json",
        "hold": tmp_path / "h.csv",
    }
    data.to_csv(paths["data"], index=False)
    make_small_schema().to_json(paths["schema"])
    make_small_df(300, seed=2).to_csv(paths["hold"], index=False)
    return paths


@pytest.mark.parametrize(
    "args", [["--help"], ["synthesize", "--help"], ["backends", "--help"], ["evaluate", "--help"],
             ["schema", "infer", "--help"]],
)  # fmt: skip
def test_help_shows_no_bool_beside_flags(args: list[str]) -> None:
    res = _run(args)
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output
    assert "--help" in res.output


def test_synthesize_help_lists_columns_and_drop() -> None:
    out = _run(["synthesize", "--help"]).output
    assert "--columns" in out and "--drop" in out and "--clip" in out


def test_backends_names_whole_and_default_marked() -> None:
    from tabpriv.backends import available_backends

    res = _run(["backends"])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output  # nothing is cut with an ellipsis
    lines = res.output.splitlines()
    for name in [*available_backends(), "auto"]:
        assert any(re.match(rf"│ {re.escape(name)}\s+│", line) for line in lines), name
    auto_row = next(i for i, line in enumerate(lines) if line.startswith("│ auto "))
    assert "The default" in lines[auto_row] + lines[auto_row + 1]
    text = re.sub(r"[│\s]+", " ", res.output)
    assert "auto's pick on <= 20 columns" in text  # next to aim


def test_without_selection_the_error_points_at_the_flags(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out)])
    assert res.exit_code == 1
    assert "'note'" in res.output and "--columns or --drop" in res.output
    assert not out.exists()


def test_drop_leaves_a_column_out_and_says_so(files: dict[str, Path], tmp_path: Path) -> None:
    out, rep = tmp_path / "o.csv", tmp_path / "o.json"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--report", str(rep), "--drop", "note", "--eps", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out).columns) == make_small_schema().names
    extra = json.loads(rep.read_text())["extra"]
    assert extra["columns_dropped"] == ["note"]  # named by the user: public
    assert "columns_dropped_unlisted" not in extra
    assert "Columns dropped" in res.stdout and "note" in res.stdout


def test_columns_select_and_reduce_the_schema(files: dict[str, Path], tmp_path: Path) -> None:
    out, rep = tmp_path / "o.csv", tmp_path / "o.json"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--report", str(rep), "--columns", "age,color", "--columns", "flag"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out).columns) == ["color", "age", "flag"]  # the table's order
    extra = json.loads(rep.read_text())["extra"]
    # 'note' is neither declared nor named by the user: its name (from the data) is not released.
    assert extra["columns_dropped"] == ["code", "score"]
    assert "not named" in extra["columns_dropped_unlisted"]
    assert "note" not in rep.read_text() and "note" not in res.stdout
    assert "the table's columns outside the schema" in " ".join(res.stdout.replace("│", " ").split())


@pytest.mark.parametrize(
    "flags", [["--drop", "nope,alsonot"], ["--columns", "age,nope"], ["--columns", "age", "--drop", "note"]]
)
def test_bad_selection_refused_before_anything_is_written(
    files: dict[str, Path], tmp_path: Path, flags: list[str]
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o",
                str(tmp_path / "o.csv"), "--save", str(tmp_path / "m.tabpriv"), *flags])  # fmt: skip
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    message = " ".join(res.output.split())
    if "nope" in flags[1]:
        assert "'nope'" in message and "Unknown column" in message
        assert ("'alsonot'" in message) == ("alsonot" in flags[1])
    else:
        assert "not both" in message


def test_api_selection_refused_before_budget_is_spent() -> None:
    df = make_small_df(300)
    root = PrivacyLedger(PrivacyBudget(10.0, 1e-5))
    for kw in ({"drop": ["nope"]}, {"columns": ["age", "nope"]}, {"columns": ["age"], "drop": ["flag"]},
               {"drop": make_small_schema().names}):  # fmt: skip
        synth = Synthesizer(backend="independent", epsilon=1.0, schema=make_small_schema(), ledger=root, **kw)
        with pytest.raises(DataValidationError):
            synth.fit(df)
    assert root.epsilon_spent == 0.0 and root.spends == []


def test_api_drop_round_trips_through_save(tmp_path: Path) -> None:
    df = make_small_df(300)
    synth = Synthesizer(
        backend="independent", epsilon=2.0, schema=make_small_schema(), drop=["score"], random_state=0
    ).fit(df)
    assert synth.columns_ == ["color", "code", "age", "flag"]
    assert synth.columns_dropped_ == ["score"]
    assert list(synth.sample(20).columns) == synth.columns_
    assert synth.privacy_report.to_dict()["extra"]["columns_dropped"] == ["score"]
    synth.save(tmp_path / "m.tabpriv")
    back = Synthesizer.load(tmp_path / "m.tabpriv")
    assert back.columns_dropped_ == ["score"] and back.columns_dropped_unlisted_ is False
    assert back.privacy_report.to_dict()["extra"]["columns_dropped"] == ["score"]
    # Without a selection the report holds no such key.
    plain = Synthesizer(backend="independent", epsilon=2.0, schema=make_small_schema()).fit(df)
    assert "columns_dropped" not in plain.privacy_report.to_dict()["extra"]


def test_select_columns_rule() -> None:
    assert select_columns(["a", "b"], ["b", "a", "x"], drop="x") == (["b", "a"], ["x"])
    assert select_columns(["a", "b"], None, columns=["b"]) == (["b"], ["a"])
    assert select_columns(["a"], ["a"]) == (["a"], [])
    with pytest.raises(DataValidationError, match="'y', 'z'"):
        select_columns(["a"], ["a"], columns=["a", "y", "z"])


@pytest.fixture()
def umask() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_outputs_follow_the_umask(files: dict[str, Path], tmp_path: Path, umask: None) -> None:
    out, rep, model = tmp_path / "o.csv", tmp_path / "o.json", tmp_path / "m.tabpriv"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--report", str(rep), "--save", str(model), "--drop", "note"])  # fmt: skip
    assert res.exit_code == 0, res.output
    for path in (out, rep, model):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_evaluation_sidecar_name_and_headline(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--drop", "note", "--evaluate", "--holdout", str(files["hold"]), "--target", "flag",
                "--eps", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.csv.evaluation.html").exists()
    assert (tmp_path / "o.csv.evaluation.json").exists()
    assert not (tmp_path / "o.csv.evaluation.html.json").exists()
    text = " ".join(res.stdout.replace("│", " ").split())
    assert "2-way TVD" in text and "LR AUC" in text and "MIA AUC" in text
    # The same comparison rows as `tabpriv evaluate`: the independent floor at the release's ε.
    results = json.loads((tmp_path / "o.csv.evaluation.json").read_text())
    release = json.loads((tmp_path / "o.csv.privacy.json").read_text())
    floor = results["floor"]
    assert floor["backend"] == "independent" and floor["epsilon"] == release["epsilon"]
    assert floor["delta"] == release["delta"] and floor["n_rows"] == results["n_rows"]["synthetic"]
    assert 0 <= floor["marginals"]["two_way"]["mean"] <= 1
    assert "independent floor at" in (tmp_path / "o.csv.evaluation.html").read_text()


def test_synthesize_evaluate_no_floor(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--drop", "note", "--evaluate", "--holdout", str(files["hold"]), "--eps", "2",
                "--no-floor"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "floor" not in json.loads((tmp_path / "o.csv.evaluation.json").read_text())


def test_evaluate_sep_reads_the_real_table_and_the_holdout(tmp_path: Path) -> None:
    real, hold, syn = tmp_path / "r.csv", tmp_path / "h.csv", tmp_path / "s.csv"
    make_small_df(300, seed=1).to_csv(real, index=False, sep=";")
    make_small_df(300, seed=2).to_csv(hold, index=False, sep=";")
    make_small_df(300, seed=3).to_csv(syn, index=False)  # as tabpriv writes it: commas
    schema = tmp_path / "s.schema.json"
    make_small_schema().to_json(schema)
    page, js = tmp_path / "e.html", tmp_path / "e.json"
    res = _run(["evaluate", str(real), str(syn), "--schema", str(schema), "--holdout", str(hold),
                "--target", "flag", "-o", str(page), "--json", str(js), "--sep", "semicolon",
                "--no-sdmetrics", "--no-floor"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "as delimiter" not in res.output  # given, not detected
    assert json.loads(js.read_text())["n_rows"] == {"real_train": 300, "synthetic": 300, "holdout": 300}
    res = _run(["evaluate", str(real), str(syn), "--schema", str(schema), "-o", str(page),
                "--sep", "pipe"])  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_evaluation_json_path_rule() -> None:
    assert evaluation_json_path(Path("a/x.evaluation.html")) == Path("a/x.evaluation.json")
    assert evaluation_json_path(Path("report")) == Path("report.json")


def test_report_path_printed_whole_at_80_columns(files: dict[str, Path], tmp_path: Path) -> None:
    deep = tmp_path / ("a_rather_long_folder_name_for_the_release_files_" * 2)
    deep.mkdir()
    out, rep = deep / "o.csv", deep / "the_privacy_report_of_this_release.json"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--report", str(rep), "--drop", "note"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(str(rep)) > 80
    assert f"Privacy report: {rep}" in res.stdout  # on its own line, not cut by the panel


def _render(label: str, total: int | None, updates: list[tuple[int, int | None, str]]) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with _phase(console, label, total=total) as update:
        for u in updates:
            update(*u)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_progress_unknown_total_is_a_spinner_not_none() -> None:
    shown = _render("fitting", None, [(0, None, "validating and encoding the rows")])
    assert "fitting" in shown and "validating" in shown
    assert "None" not in shown and "0/" not in shown and "ETA" not in shown


def test_progress_known_total_has_count_and_eta() -> None:
    shown = _render("sampling and writing", 1000, [(0, 1000, "rows"), (250, 1000, "rows")])
    assert "sampling and writing" in shown and "250/1,000" in shown and "ETA" in shown
    assert "None" not in shown


def test_progress_in_work_units_shows_a_share() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with _phase(console, "evaluating", percent=True) as update:
        update(0, 56, "discretising the tables")
        update(14, 56, "membership-inference attacks")
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "25%" in shown and "ETA" in shown and "14/56" not in shown


def test_fit_progress_reaches_the_bar() -> None:
    """The backends' FitContext.report(done, total, message) drives the fitting bar."""
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with _phase(console, "fitting") as update:
        Synthesizer(
            backend="independent", epsilon=2.0, schema=make_small_schema(), progress=update, random_state=0
        ).fit(make_small_df(200))
    assert "None" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_drop_with_an_inferred_schema_infers_the_kept_columns_only(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out, rep = tmp_path / "o.csv", tmp_path / "o.json"
    res = _run(["synthesize", str(files["data"]), "--infer-schema", "-o", str(out), "--report", str(rep),
                "--drop", "note,score"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out).columns) == ["color", "code", "age", "flag"]
    report = json.loads(rep.read_text())
    assert report["extra"]["columns_dropped"] == ["score", "note"]
    assert report["end_to_end_dp"] is False


def test_one_call_synthesize_takes_columns() -> None:
    from tabpriv.synthesizer import synthesize

    out = synthesize(make_small_df(200), epsilon=2.0, schema=make_small_schema(), backend="independent",
                     columns=["age", "flag"], n_rows=10)  # fmt: skip
    assert list(out.columns) == ["age", "flag"]
    assert out.attrs["privacy_report"]["extra"]["columns_dropped"] == ["color", "code", "score"]


def test_sampling_reports_rows_drawn() -> None:
    seen: list[tuple[int, int | None, str]] = []
    synth = Synthesizer(backend="independent", epsilon=2.0, schema=make_small_schema(), random_state=0)
    synth.fit(make_small_df(200))
    synth.progress = lambda done, total, message: seen.append((done, total, message))
    synth.sample_chunk_max_rows = 40
    for _ in synth.sample_chunks(100):
        pass
    assert seen[0] == (0, 100, "rows") and seen[-1] == (100, 100, "rows")
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


def test_sep_is_used_instead_of_the_sniffer(tmp_path: Path) -> None:
    # A comma file read with --sep ';' is one column of whole lines: refused (nothing written); the
    # sniffer alone reads it right. So the flag reaches the reader.
    src = tmp_path / "t.csv"
    src.write_text("a,b,c\n" + "".join(f"{i},x{i % 3},{i / 2}\n" for i in range(30)))
    sniffed, chosen = tmp_path / "s.schema.json", tmp_path / "c.schema.json"
    res = _run(["schema", "infer", str(src), "-o", str(chosen), "--sep", "semicolon"])
    assert res.exit_code == 1 and "wrong delimiter" in res.output and not chosen.exists()
    res = _run(["schema", "infer", str(src), "-o", str(sniffed)])
    assert res.exit_code == 0, res.output
    assert [c["name"] for c in json.loads(sniffed.read_text())["columns"]] == ["a", "b", "c"]


@pytest.mark.parametrize("bad", [";;", "", '"'])
def test_bad_sep_is_one_sentence_and_writes_nothing(files: dict[str, Path], tmp_path: Path, bad: str) -> None:
    out = tmp_path / "o.csv"
    res = _run(["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                "--drop", "note", "--sep", bad])  # fmt: skip
    assert res.exit_code == 1
    assert "--sep must be one character" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_sep_reads_input_and_holdout(tmp_path: Path) -> None:
    data, hold = tmp_path / "d.csv", tmp_path / "h.csv"
    make_small_df(300, seed=1).to_csv(data, index=False, sep="\t")
    make_small_df(300, seed=2).to_csv(hold, index=False, sep="\t")
    schema = tmp_path / "s.schema.json"
    make_small_schema().to_json(schema)
    out = tmp_path / "o.csv"
    res = _run(["synthesize", str(data), "--schema", str(schema), "-o", str(out), "--sep", "tab",
                "--eps", "2", "--evaluate", "--holdout", str(hold), "--seed", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "as delimiter" not in res.output  # given, not detected: nothing to announce
    assert list(pd.read_csv(out).columns) == make_small_schema().names
