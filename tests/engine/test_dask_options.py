"""Issue 16 on the Dask engine: columns=/drop=, non-comma CSV delimiters, sampling split into parts."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import get_backend_class
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import DataValidationError, DataWarning, EngineError, InputFileError
from tabpriv.io import read_table, sniff_delimiter

from ..conftest import make_small_df, make_small_schema

pytest.importorskip("distributed")
dask_engine = pytest.importorskip("tabpriv.engine.dask_engine")

N_ROWS = 1500
#: A column of the files that the schema does not declare (its name comes from the data).
NOTE = "note"


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of ~16 kB, so that a 1,500-row file is cut into several byte ranges."""
    monkeypatch.setattr(dask_engine, "DEFAULT_BLOCKSIZE", 16_000)


def _table(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    df = make_small_df(n, seed=seed)
    df[NOTE] = [f"free text {i}" for i in range(n)]  # not in the schema: must be left out
    return df


def _write(df: pd.DataFrame, path: Path, sep: str = ",") -> str:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, sep=sep, na_rep="")
    return str(path)


def _files(tmp_path: Path, df: pd.DataFrame, suffix: str = ".csv", sep: str = ",", n: int = 3) -> list[str]:
    return [
        _write(df.iloc[rows], tmp_path / f"part{i}{suffix}", sep)
        for i, rows in enumerate(np.array_split(np.arange(len(df)), n))
    ]


def _whole(tmp_path: Path, df: pd.DataFrame, sep: str = ",") -> pd.DataFrame:
    """The table as the default path reads it (one CSV file through read_table)."""
    path = tmp_path / "whole.csv"
    _write(df, path, sep)
    return read_table(path, make_small_schema(), sep=sep)


def _synth(backend: str = "independent", **kw: object) -> Synthesizer:
    return Synthesizer(
        backend=backend,
        epsilon=3.0,
        schema=make_small_schema(),
        device="cpu",
        random_state=0,
        backend_params=dict(get_backend_class(backend).quick_params),
        **kw,  # type: ignore[arg-type]
    )


def _same_release(a: Synthesizer, b: Synthesizer) -> None:
    arrays_a, arrays_b = a.backend_.get_state()[0], b.backend_.get_state()[0]
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), k
    assert a.columns_ == b.columns_
    assert a.schema_.to_dict() == b.schema_.to_dict()
    assert a.n_rows_in_ == b.n_rows_in_
    ea, eb = a.privacy_report.to_dict()["extra"], b.privacy_report.to_dict()["extra"]
    for key in ("columns_dropped", "columns_dropped_unlisted"):
        assert ea.get(key) == eb.get(key), key
    pd.testing.assert_frame_equal(a.sample(200), b.sample(200))


# -- 1. columns= / drop= -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_workers_read_only_the_selected_columns(tmp_path: Path, suffix: str) -> None:
    """CSV usecols / Parquet column projection: a partition holds the kept columns only."""
    df = _table(200)
    path = _write(df, tmp_path / f"t{suffix}")
    schema = make_small_schema().select(["color", "age", "flag"])
    pieces, columns = dask_engine.list_pieces(path, schema, usecols=["color", "age", "flag"])
    assert columns == ["color", "age", "flag"]
    raw = dask_engine.read_piece(pieces[0])
    assert list(raw.columns) == ["color", "age", "flag"]
    assert raw["age"].tolist() == df["age"].tolist()
    # a selected column the file lacks is not asked for: validation names it (the schema's sentence)
    pieces, _ = dask_engine.list_pieces(path, make_small_schema(), usecols=["color", "age", "missing"])
    assert list(dask_engine.read_piece(pieces[0]).columns) == ["color", "age"]
    assert dask_engine.input_columns(path) == list(df.columns)


@pytest.mark.parametrize(
    ("backend", "selection"),
    [
        ("independent", {"drop": [NOTE, "score"]}),
        ("independent", {"columns": ["age", "color", "flag"]}),  # note left out unnamed
        pytest.param("mst", {"columns": ["color", "code", "age"]}, marks=pytest.mark.slow),  # ~10 s
    ],
)
def test_selection_same_release_as_default(
    backend: str, selection: dict[str, list[str]], cluster: str, tmp_path: Path, small_blocks: None
) -> None:
    df = _table(seed=1)
    a = _synth(backend, **selection).fit(_whole(tmp_path, df))
    b = _synth(backend, engine="dask", scheduler=cluster, **selection).fit(_files(tmp_path, df))
    _same_release(a, b)
    if "columns" in selection:
        assert b.columns_dropped_unlisted_ and NOTE not in str(b.privacy_report.to_dict())


def test_selection_parquet_same_release(cluster: str, tmp_path: Path) -> None:
    df = _table(seed=2)
    a = _synth(drop=[NOTE]).fit(_whole(tmp_path, df))
    b = _synth(drop=[NOTE], engine="dask", scheduler=cluster).fit(_files(tmp_path, df, ".parquet"))
    _same_release(a, b)


def test_selection_errors_before_any_spend(cluster: str, tmp_path: Path) -> None:
    df = _table(300, seed=3)
    paths = _files(tmp_path, df)
    for kw in (
        {"drop": ["nope"]},  # unknown name
        {"columns": ["age"], "drop": ["flag"]},  # both
        {"columns": ["age", NOTE]},  # kept, but not in the schema: the default path's column sentence
    ):
        ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
        default_ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
        with pytest.raises(DataValidationError) as want:
            _synth(ledger=default_ledger, **kw).fit(_whole(tmp_path, df))
        with pytest.raises(DataValidationError) as got:
            _synth(ledger=ledger, engine="dask", scheduler=cluster, **kw).fit(paths)
        assert str(got.value) == str(want.value), kw
        assert ledger.spends == [] and default_ledger.spends == []


def test_selected_column_missing_in_one_file_same_sentence(cluster: str, tmp_path: Path) -> None:
    df = _table(seed=4)
    paths = _files(tmp_path, df)
    _write(df.iloc[1000:].drop(columns=["score"]), Path(paths[2]))
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    with pytest.raises(DataValidationError) as want:
        _synth(drop=[NOTE]).fit(_whole(tmp_path, df.drop(columns=["score"])))
    with pytest.raises(DataValidationError) as got:
        _synth(drop=[NOTE], ledger=ledger, engine="dask", scheduler=cluster).fit(paths)
    assert str(got.value) == str(want.value) and "'score'" in str(got.value)
    assert ledger.spends == []


# -- 2. non-comma delimiters -------------------------------------------------------------------------
def test_sniffing_rule_is_read_tables(tmp_path: Path) -> None:
    """dask_engine.sniff_delimiter (fsspec) answers as tabpriv.io.sniff_delimiter on the same files."""
    df = make_small_df(50)
    cases = {
        "comma.csv": df.to_csv(index=False),
        "semi.csv": df.to_csv(index=False, sep=";"),
        "tab.csv": df.to_csv(index=False, sep="\t"),
        "pipe.csv": df.to_csv(index=False, sep="|"),
        "quoted.csv": 'a;b\n"x,y";1\n"u,v";2\n',  # commas inside quotes: a semicolon file
        "ragged.csv": "a,b\n1,2\n3\n",  # nothing fits: a comma
        "one.csv": "a\n1\n2\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    with gzip.open(tmp_path / "semi.csv.gz", "wt") as fh:
        fh.write(cases["semi.csv"])
    for path in sorted(tmp_path.iterdir()):
        assert dask_engine.sniff_delimiter(str(path)) == sniff_delimiter(path), path.name
    assert dask_engine.sniff_delimiter(str(tmp_path / "semi.csv.gz")) == ";"


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_non_comma_csv_same_release_as_default(
    sep: str, cluster: str, tmp_path: Path, small_blocks: None
) -> None:
    df = _table(seed=5)
    a = _synth(drop=[NOTE]).fit(_whole(tmp_path, df, sep))
    paths = _files(tmp_path, df, sep=sep)
    with pytest.warns(DataWarning, match="as delimiter") as rec:  # detected, and named once
        b = _synth(drop=[NOTE], engine="dask", scheduler=cluster).fit(paths)
    assert len([w for w in rec if issubclass(w.category, DataWarning)]) == 1
    assert "3 of the 3 input files" in str(rec[0].message)
    _same_release(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given, not detected: nothing to announce
        c = _synth(drop=[NOTE], engine="dask", scheduler=cluster, sep=sep).fit(paths)
    _same_release(_synth(drop=[NOTE]).fit(_whole(tmp_path, df, sep)), c)  # a fresh twin: first sample


def test_non_comma_bad_value_same_sentence(cluster: str, tmp_path: Path, small_blocks: None) -> None:
    df = _table(seed=6).astype({"color": object})
    df.iloc[[7, 1200], df.columns.get_loc("color")] = "purple"
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    with pytest.raises(DataValidationError) as want:
        _synth(drop=[NOTE]).fit(_whole(tmp_path, df, ";"))
    with pytest.raises(DataValidationError) as got:
        _synth(drop=[NOTE], ledger=ledger, engine="dask", scheduler=cluster, sep=";").fit(
            _files(tmp_path, df, sep=";")
        )
    assert str(got.value) == str(want.value) and ledger.spends == []


def test_ragged_line_same_sentence_nothing_spent(cluster: str, tmp_path: Path) -> None:
    df = _table(300, seed=7)
    path = tmp_path / "ragged.csv"
    lines = df.to_csv(index=False, sep=";").splitlines()
    lines[40] += ";extra"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as want:
        read_table(path, make_small_schema(), sep=";")
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    with pytest.raises(InputFileError) as got:
        _synth(drop=[NOTE], ledger=ledger, engine="dask", scheduler=cluster, sep=";").fit(str(path))
    assert str(got.value) == str(want.value) and "line 41" in str(got.value)
    assert ledger.spends == []


def test_sep_refused_on_the_default_engine() -> None:
    with pytest.raises(EngineError, match="engine='dask' only"):
        _synth(sep=";").fit(make_small_df(50))


# -- 3. sampling split into parts --------------------------------------------------------------------
def _fitted(backend: str = "independent", block: int = 100) -> Synthesizer:
    synth = _synth(backend).fit(make_small_df(600, seed=8))
    synth.sample_chunk_max_rows = block  # small blocks: several blocks and parts on a small table
    return synth


def _read_parts(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def test_parts_are_the_rows_sample_returns(tmp_path: Path) -> None:
    """Default engine: the parts in order are sample(n) of the same call; part size changes nothing."""
    want = _fitted().sample(1050)
    a = _fitted().sample_to(tmp_path / "a", 1050, part_rows=300)
    assert [p.name for p in a] == [f"part-{i:05d}.parquet" for i in range(4)]
    got = _read_parts(a)
    expected = pd.read_parquet(_write_one(want, tmp_path / "want.parquet"))
    pd.testing.assert_frame_equal(got, expected)
    b = _fitted().sample_to(tmp_path / "b", 1050, part_rows=100)  # other parts, same rows
    assert len(b) == 11
    pd.testing.assert_frame_equal(_read_parts(b), got)
    c = _fitted().sample_to(tmp_path / "c", 1050, file_format="csv")
    assert len(c) == 3 and pd.read_csv(c[0]).columns.tolist() == want.columns.tolist()
    synth = _fitted()
    synth.sample_to(tmp_path / "d", 120)
    assert synth.privacy_report.rows_out == 120


def _write_one(df: pd.DataFrame, path: Path) -> Path:
    from tabpriv.io import write_table_chunks

    write_table_chunks([df], path, schema=make_small_schema())
    return path


def test_sample_to_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synth = _fitted()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(InputFileError, match="not empty"):
        synth.sample_to(tmp_path / "full", 10)
    with pytest.raises(DataValidationError, match="multiple of the sampling block"):
        synth.sample_to(tmp_path / "p", 10, part_rows=150)
    with pytest.raises(DataValidationError, match="positive integer"):
        synth.sample_to(tmp_path / "p", 0)
    with pytest.raises(EngineError, match="Unknown engine"):
        synth.sample_to(tmp_path / "p", 10, engine="spark")
    cls = type(synth.backend_)
    monkeypatch.setattr(cls, "sample_chunks", lambda self, n, seed, chunk_rows: iter(()))
    with pytest.raises(EngineError, match="jointly"):
        synth.sample_to(tmp_path / "p", 10)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("backend", ["independent", "mst"])
def test_parts_on_the_workers_are_the_default_engines(backend: str, cluster: str, tmp_path: Path) -> None:
    """Each part drawn on a worker from the save-file content: the same bytes as drawn here."""
    here = _fitted(backend).sample_to(tmp_path / "here", 1050, part_rows=200)
    there = _fitted(backend).sample_to(
        tmp_path / "there", 1050, part_rows=200, engine="dask", scheduler=cluster
    )
    assert [p.name for p in here] == [p.name for p in there]
    for a, b in zip(here, there, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    rows = _fitted(backend).sample(1050)
    pd.testing.assert_frame_equal(
        _read_parts(there), pd.read_parquet(_write_one(rows, tmp_path / "w.parquet"))
    )


def test_failing_part_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tabpriv.engine import sampling

    synth = _fitted()
    calls = {"n": 0}
    real = sampling.draw_part

    def flaky(s: Synthesizer, spec: sampling.PartSpec) -> int:
        calls["n"] += 1
        if spec.index == 2:
            raise OSError("disk full")
        return real(s, spec)

    monkeypatch.setattr(sampling, "draw_part", flaky)
    with pytest.raises(OSError, match="disk full"):
        synth.sample_to(tmp_path / "out", 1050, part_rows=200)
    assert list((tmp_path / "out").iterdir()) == [] and calls["n"] == 3


# -- the CLI -----------------------------------------------------------------------------------------
def test_cli_dask_drop_and_sep_write_the_default_engines_table(cluster: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tabpriv.cli import app

    df = _table(seed=9)
    folder = tmp_path / "parts"
    folder.mkdir()
    _files(folder, df, sep=";")
    whole = tmp_path / "whole.csv"
    _write(df, whole, ";")
    schema = tmp_path / "small.schema.json"
    make_small_schema().to_json(schema)
    common = ["--schema", str(schema), "--backend", "independent", "--seed", "3", "--rows", "300",
              "--drop", f"{NOTE},score", "--sep", "semicolon"]  # fmt: skip
    runner = CliRunner()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    res = runner.invoke(app, ["synthesize", str(whole), *common, "-o", str(a)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["synthesize", str(folder), *common, "-o", str(b), "--engine", "dask", "--scheduler", cluster]
    )
    assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    assert pd.read_csv(b).columns.tolist() == ["color", "code", "age", "flag"]
    report = Path(str(b) + ".privacy.json").read_text()
    assert '"columns_dropped": [' in report and NOTE in report  # named by the user in --drop: public
