"""CLI safety (tabpriv issue 13): outputs never overwrite inputs, every option is checked before the fit,
large ``--rows`` are streamed, clip counts are never shown, and a weak epsilon is warned about."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tabpriv.budget import PrivacyLedger
from tabpriv.cli import app

from ..conftest import make_small_df, make_small_schema

runner = CliRunner()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "mine.csv"
    make_small_df(300).to_csv(data, index=False)
    schema = tmp_path / "s.schema.json"
    make_small_schema().to_json(schema)
    hold = tmp_path / "hold.csv"
    make_small_df(200, seed=1).to_csv(hold, index=False)
    os.chmod(data, 0o644)
    return {"data": data, "schema": schema, "hold": hold, "dir": tmp_path}


@pytest.fixture()
def spends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ledger spend made while the test runs (a spend is the budget being used on the data)."""
    seen: list[str] = []
    original = PrivacyLedger.spend

    def spy(self: PrivacyLedger, mechanism: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(mechanism)
        return original(self, mechanism, *args, **kwargs)

    monkeypatch.setattr(PrivacyLedger, "spend", spy)
    return seen


def _state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: content digest and permission bits."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            stat.S_IMODE(p.stat().st_mode),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_sentence_error(res: Any) -> str:
    err = res.stderr.strip()
    assert res.exit_code == 1, (res.exit_code, res.output)
    assert err.startswith("Error: "), err
    assert "Traceback" not in res.output
    assert len(err.splitlines()) == 1, err
    return err


# -- item 8: an output that is an input (or another output) is refused ---------------------------------
def _collisions(f: dict[str, Path]) -> Iterator[tuple[str, list[str]]]:
    d, data, schema, hold = f["dir"], f["data"], f["schema"], f["hold"]
    base = ["synthesize", str(data), "--schema", str(schema)]
    yield "output is the input", [*base, "-o", str(data)]
    yield "output via ..", [*base, "-o", str(d / "sub" / ".." / "mine.csv")]
    os.symlink(data, d / "link.csv")
    yield "output is a symlink to the input", [*base, "-o", str(d / "link.csv")]
    os.link(data, d / "hard.csv")
    yield "output is a hard link to the input", [*base, "-o", str(d / "hard.csv")]
    yield "report is the input", [*base, "-o", str(d / "o.csv"), "--report", str(data)]
    yield "report is the schema", [*base, "-o", str(d / "o.csv"), "--report", str(schema)]
    yield "save is the schema", [*base, "-o", str(d / "o.csv"), "--save", str(schema)]
    yield "report is the output", [*base, "-o", str(d / "o.csv"), "--report", str(d / "o.csv")]
    yield "save is the report", [*base, "-o", str(d / "o.csv"), "--save", str(d / "o.csv.privacy.json")]
    yield (
        "evaluation report is the hold-out",
        [
            *base,
            "-o",
            str(d / "o.csv"),
            "--evaluate",
            "--holdout",
            str(hold),
            "--evaluation-report",
            str(hold),
        ],
    )
    yield "schema infer onto its input", ["schema", "infer", str(data), "-o", str(data)]
    yield "schema infer onto a hard link", ["schema", "infer", str(data), "-o", str(d / "hard.csv")]
    ev = ["evaluate", str(data), str(hold), "--schema", str(schema)]
    yield "evaluate onto the real table", [*ev, "-o", str(data)]
    yield "evaluate onto the schema", [*ev, "-o", str(d / "e.html"), "--json", str(schema)]
    yield "evaluate: json is the html", [*ev, "-o", str(d / "e.html"), "--json", str(d / "e.html")]


def test_output_that_is_an_input_is_refused_and_nothing_is_written(files, spends) -> None:  # type: ignore[no-untyped-def]
    (files["dir"] / "sub").mkdir()
    for name, args in _collisions(files):
        before = _state(files["dir"])
        res = runner.invoke(app, args)
        err = _one_sentence_error(res)
        assert "Refusing to write" in err and "nothing was written" in err, (name, err)
        assert _state(files["dir"]) == before, name  # input untouched (content and mode), no new file
        assert spends == [], name


def test_new_outputs_get_the_umask_mode_and_replaced_files_keep_theirs(files) -> None:  # type: ignore[no-untyped-def]
    d = files["dir"]
    out, kept = d / "o.csv", d / "kept.csv.privacy.json"
    kept.write_text("{}")
    os.chmod(kept, 0o640)
    old = os.umask(0o027)
    try:
        res = runner.invoke(
            app, ["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
                  "--report", str(kept), "--save", str(d / "m.tabpriv")],
        )  # fmt: skip
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    assert stat.S_IMODE((d / "m.tabpriv").stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert stat.S_IMODE(files["data"].stat().st_mode) == 0o644


# -- item 9: every option is checked before the budget is spent or a file written --------------------
def _bad_options(f: dict[str, Path]) -> Iterator[tuple[list[str], str]]:
    d, data, schema, hold = f["dir"], f["data"], f["schema"], f["hold"]
    base = ["synthesize", str(data), "--schema", str(schema), "-o", str(d / "o.csv")]
    ev = [*base, "--evaluate", "--holdout", str(hold)]
    yield [*ev, "--target", "NOT_A_COLUMN"], "NOT_A_COLUMN"
    yield [*base, "--evaluate", "--holdout", str(d / "absent.csv"), "--target", "color"], "does not exist"
    pd.read_csv(hold).drop(columns=["age"]).to_csv(d / "hold_cols.csv", index=False)
    yield [*base, "--evaluate", "--holdout", str(d / "hold_cols.csv")], "'age'"
    pd.read_csv(hold).assign(age=500).to_csv(d / "hold_oob.csv", index=False)
    yield [*base, "--evaluate", "--holdout", str(d / "hold_oob.csv")], "hold-out"
    pd.read_csv(hold).head(10).to_csv(d / "hold_small.csv", index=False)
    yield [*base, "--evaluate", "--holdout", str(d / "hold_small.csv")], "hold-out table has 10 rows"
    yield [*ev, "--target", "score"], "score"  # continuous with hundreds of values: no classifier
    yield [*ev, "--evaluation-report", str(d / "absent" / "e.html")], "does not exist"
    yield [*base, "--report", str(d / "absent" / "r.json")], "does not exist"
    yield [*base, "--save", str(d / "absent" / "m.tabpriv")], "does not exist"
    yield [*base, "--save", str(d)], "folder"
    for rows in ("0", "-5", "2.5", "abc", "inf", "nan"):
        yield [*base, "--rows", rows], "--rows"
    yield [*base, "--param", "no_such_param=3"], "no_such_param"
    yield [*base, "--param", "bins=0"], "bins"
    yield [*base, "--param", "novalue"], "KEY=VALUE"
    yield [*base, "--eps", "-1"], "epsilon"


def test_bad_options_fail_before_any_spend_or_write(files, spends) -> None:  # type: ignore[no-untyped-def]
    for args, fragment in _bad_options(files):
        before = _state(files["dir"])
        res = runner.invoke(app, args)
        err = _one_sentence_error(res)
        assert fragment in err, (args, err)
        assert spends == [], args  # the budget was not used on the data
        assert _state(files["dir"]) == before, args  # no output, no report, no partial file


def test_read_only_output_folder_is_refused_before_the_fit(files, spends, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tabpriv import io

    ro = files["dir"] / "ro"
    ro.mkdir()
    real_access = os.access
    # As if the folder were read-only (root could write into a mode-0555 folder, so it is simulated).
    monkeypatch.setattr(io.os, "access", lambda p, mode: Path(p) != ro and real_access(p, mode))
    res = runner.invoke(
        app, ["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(ro / "o.csv")]
    )
    assert "not writable" in _one_sentence_error(res)
    assert spends == [] and list(ro.iterdir()) == []


# -- item 10: --rows is streamed, and bounded by the disk --------------------------------------------
def test_large_rows_are_streamed_and_equal_the_in_memory_table(files, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tabpriv import io
    from tabpriv.io import read_table, write_table
    from tabpriv.synthesizer import Synthesizer

    monkeypatch.setattr(Synthesizer, "sample_chunk_max_rows", 64)  # 1000 rows = 16 blocks
    out = files["dir"] / "o.csv"
    args = ["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", str(out),
            "--rows", "1e3", "--seed", "11"]  # fmt: skip
    # The reference: the same seeded fit, sampled in memory and written at once.
    ref = Synthesizer(epsilon=5.1, schema=make_small_schema(), random_state=11, device="auto")
    ref.fit(read_table(files["data"], make_small_schema()))
    write_table(ref.sample(1000), files["dir"] / "ref.csv")

    def no_in_memory(*a: Any, **k: Any) -> Any:
        raise AssertionError("the CLI sampled the whole table in memory")

    monkeypatch.setattr(Synthesizer, "sample", no_in_memory)
    monkeypatch.setattr(io, "available_memory_bytes", lambda: 1)  # streaming needs no memory check
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == (files["dir"] / "ref.csv").read_bytes()  # bit-identical to sample(1000)
    assert json.loads(Path(str(out) + ".privacy.json").read_text())["rows_out"] == 1000


def test_rows_beyond_the_free_disk_space_are_refused_before_the_fit(files, spends, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from tabpriv import io

    real = shutil.disk_usage(files["dir"])
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: real._replace(free=10**6))
    before = _state(files["dir"])
    base = [
        "synthesize",
        str(files["data"]),
        "--schema",
        str(files["schema"]),
        "-o",
        str(files["dir"] / "o.csv"),
    ]
    err = _one_sentence_error(runner.invoke(app, [*base, "--rows", "1e12"]))
    assert "1,000,000,000,000 rows" in err and "free" in err
    assert spends == [] and _state(files["dir"]) == before
    # 300 rows x 91 estimated bytes fit in 1 MB
    assert runner.invoke(app, [*base, "--rows", "300"]).exit_code == 0


def test_evaluate_checks_the_in_memory_table_before_the_fit(files, spends, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tabpriv import io

    monkeypatch.setattr(io, "available_memory_bytes", lambda: 10_000)
    out = str(files["dir"] / "o.csv")
    args = ["synthesize", str(files["data"]), "--schema", str(files["schema"]), "-o", out,
            "--evaluate", "--holdout", str(files["hold"]), "--rows", "1000"]  # fmt: skip
    err = _one_sentence_error(runner.invoke(app, args))
    assert "sample_chunks" in err and spends == []


# -- item 1: the clip count is never shown -------------------------------------------------------------
def _clip_run(tmp: Path, schema: Path, n_out_of_range: int) -> tuple[str, dict[str, Any]]:
    df = make_small_df(300)
    df.loc[: n_out_of_range - 1, "age"] = 1000
    src = tmp / f"oob{n_out_of_range}.csv"
    df.to_csv(src, index=False)
    out = tmp / f"o{n_out_of_range}.csv"
    res = runner.invoke(app, ["synthesize", str(src), "--schema", str(schema), "--clip", "-o", str(out),
                              "--save", str(tmp / f"m{n_out_of_range}.tabpriv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = (
        res.output.replace(str(tmp), "TMP")
        .replace(f"oob{n_out_of_range}", "oob")
        .replace(f"o{n_out_of_range}", "o")
        .replace(f"m{n_out_of_range}", "m")
    )
    report = json.loads(Path(str(out) + ".privacy.json").read_text())
    for k in ("timestamp", "headline"):
        report.pop(k)
    for s in report["spends"]:
        s.pop("timestamp")
    return re.sub(r"\s+", " ", text), report


def test_clip_counts_appear_nowhere_in_the_cli_release(files) -> None:  # type: ignore[no-untyped-def]
    text2, rep2 = _clip_run(files["dir"], files["schema"], 2)
    text3, rep3 = _clip_run(files["dir"], files["schema"], 3)
    assert rep2 == rep3  # two tables differing in one out-of-range value: the same report
    assert text2 == text3  # and the same terminal output
    assert "Clipping" in text2 and "outside the declared bounds were clipped" in text2


# -- item 11: a weak epsilon is warned about ---------------------------------------------------------------
def test_weak_epsilon_is_warned_and_not_green(files) -> None:  # type: ignore[no-untyped-def]
    base = ["synthesize", str(files["data"]), "--schema", str(files["schema"])]
    res = runner.invoke(
        app, [*base, "-o", str(files["dir"] / "w.csv"), "--eps", "50"], env={"FORCE_COLOR": "1"}
    )
    assert res.exit_code == 0, res.output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", res.output)
    assert "At epsilon = 50 the guarantee is weak" in re.sub(r"\s+", " ", plain)
    assert "docs/privacy.md#choosing-epsilon" in plain
    assert "(50, 1e-05)-differentially private" in plain
    assert "\x1b[32m(50" not in res.output  # the headline is not green
    report = json.loads((files["dir"] / "w.csv.privacy.json").read_text())
    assert any("guarantee is weak" in w for w in report["warnings"]) and "WEAK" in report["headline"]

    ok = runner.invoke(
        app, [*base, "-o", str(files["dir"] / "ok.csv"), "--eps", "10"], env={"FORCE_COLOR": "1"}
    )
    assert ok.exit_code == 0, ok.output
    assert "guarantee is weak" not in ok.output and "WEAK" not in ok.output
    assert "\x1b[32m(10, 1e-05)-differentially private" in ok.output  # a strong one is still green
