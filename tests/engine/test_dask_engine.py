"""The Dask engine: same counts and same release as the default engine, same errors, nothing spent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import get_backend_class
from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.measure import exact_marginals
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.engine import map_chunks, map_sum
from tabpriv.errors import DataValidationError, EngineError, SchemaError
from tabpriv.io import read_table, write_table
from tabpriv.transformers.table import TableTransformer

from ..conftest import make_small_df, make_small_schema

distributed = pytest.importorskip("distributed")
dask_engine = pytest.importorskip("tabpriv.engine.dask_engine")

N_ROWS = 1500


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of ~16 kB, so that a 1,500-row file is cut into several byte ranges."""
    monkeypatch.setattr(dask_engine, "DEFAULT_BLOCKSIZE", 16_000)


def _files(tmp_path: Path, df: pd.DataFrame, n_files: int = 3, suffix: str = ".csv") -> list[str]:
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(df)), n_files)):
        p = tmp_path / f"part{i}{suffix}"
        write_table(df.iloc[rows], p)
        paths.append(str(p))
    return paths


def _whole(tmp_path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """The table as the default path reads it (one CSV file through read_table)."""
    p = tmp_path / "whole.csv"
    write_table(df, p)
    return read_table(p, make_small_schema())


def _synth(backend: str, **kw: object) -> Synthesizer:
    return Synthesizer(
        backend=backend,
        epsilon=3.0,
        schema=make_small_schema(),
        device="cpu",
        random_state=0,
        backend_params=dict(get_backend_class(backend).quick_params),
        **kw,  # type: ignore[arg-type]
    )


# -- the seam on the default engine ------------------------------------------------------------------
def test_default_map_sum_and_map_chunks_are_the_chunk_loop() -> None:
    df = make_small_df(300)
    tt = TableTransformer(make_small_schema()).fit()
    table = tt.transform_lazy(make_small_schema().validate(df)[0])
    total = map_sum(table, lambda b: [b.sum(axis=0), np.array([b.shape[0]])], chunk_rows=70)
    np.testing.assert_allclose(total[0], table.data.sum(axis=0), rtol=1e-5)
    assert int(total[1][0]) == 300
    starts = [s for s, _ in map_chunks(table, lambda b: b.shape[0], chunk_rows=70)]
    assert starts == [0, 70, 140, 210, 280]


# -- same counts, same release ----------------------------------------------------------------------
def test_same_counts_csv_and_parquet(cluster: str, tmp_path: Path, small_blocks: None) -> None:
    df = make_small_df(N_ROWS, seed=1)
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    default = tt.transform_lazy(schema.validate(_whole(tmp_path, df))[0])
    domain = MarginalDomain(tt.spans_)
    cliques = [(0,), (1, 2), (0, 3, 4), (2, 3)]
    expected = exact_marginals(default, domain, cliques, chunk_bytes=4096)
    for suffix in (".csv", ".parquet"):
        paths = _files(tmp_path, df, 3, suffix)
        with dask_engine.DaskSession(cluster) as session:
            table, columns = session.open_table(paths, schema, tt)
            assert columns == list(df.columns) and table.n_rows == N_ROWS
            if suffix == ".csv":
                assert table.engine_source.n_partitions > 3  # byte ranges within the files
            got = exact_marginals(table, domain, cliques, chunk_bytes=4096)
            assert all(np.array_equal(got[c], expected[c]) for c in cliques), suffix
            # the fallback iter_chunks re-blocks the workers' pieces into the default chunks
            blocks = list(table.iter_chunks(333))
            assert [s for s, _ in blocks] == [s for s, _ in default.iter_chunks(333)]
            np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), default.data)
            with pytest.raises(EngineError, match="random access"):
                table.take([0, 1])


@pytest.mark.parametrize("backend", ["independent", "mst", "slicing"])
def test_same_release_for_the_same_seed(
    backend: str, cluster: str, tmp_path: Path, small_blocks: None
) -> None:
    df = make_small_df(N_ROWS, seed=2)
    a = _synth(backend).fit(_whole(tmp_path, df))
    b = _synth(backend, engine="dask", scheduler=cluster).fit(_files(tmp_path, df))
    arrays_a = a.backend_.get_state()[0]  # the noisy released state
    arrays_b = b.backend_.get_state()[0]
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), k
    untimed = [{k: v for k, v in d.items() if k != "timestamp"} for d in a.ledger_.to_list()]
    assert untimed == [{k: v for k, v in d.items() if k != "timestamp"} for d in b.ledger_.to_list()]
    assert a.n_rows_in_ == b.n_rows_in_ == N_ROWS
    pd.testing.assert_frame_equal(a.sample(200), b.sample(200))
    ra, rb = a.privacy_report.to_dict(), b.privacy_report.to_dict()
    for key in ("epsilon", "delta", "mechanism", "noise", "rows_in"):
        assert ra[key] == rb[key], key


def test_slicing_projection_identical_at_every_partition_split(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk cut by a partition boundary (down to one row) projects exactly as the whole chunk."""
    from tabpriv.backends.slicing.mechanism import privatise

    df = make_small_df(400, seed=3)
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    default = tt.transform_lazy(schema.validate(_whole(tmp_path, df))[0])
    paths = []
    for i, (a, b) in enumerate([(0, 101), (101, 102), (102, 400)]):  # a one-row partition
        p = tmp_path / f"cut{i}.csv"
        write_table(df.iloc[a:b], p)
        paths.append(str(p))
    kw = {"sigma": 0.5, "n_slices": 4, "k": 2, "seed": 7, "accounting": {}, "chunk_rows": 64}
    from tabpriv._random import secret_generator

    want = privatise(default, secret_rng=secret_generator(1, "t"), **kw)  # type: ignore[arg-type]
    with dask_engine.DaskSession(cluster) as session:
        table, _ = session.open_table(paths, schema, tt)
        got = privatise(table, secret_rng=secret_generator(1, "t"), **kw)  # type: ignore[arg-type]
        sub_want = privatise(default, secret_rng=secret_generator(2, "t"), sample_size=150, **kw)  # type: ignore[arg-type]
        sub_got = privatise(table, secret_rng=secret_generator(2, "t"), sample_size=150, **kw)  # type: ignore[arg-type]
    assert want.noisy.tobytes() == got.noisy.tobytes()
    assert sub_want.noisy.tobytes() == sub_got.noisy.tobytes()


# -- bad input: the default path's sentence, nothing spent -------------------------------------------
def _default_error(tmp_path: Path, df: pd.DataFrame) -> str:
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    with pytest.raises(DataValidationError) as e:
        _synth("independent", ledger=ledger).fit(_whole(tmp_path, df))
    assert ledger.spends == []
    return str(e.value)


def _dask_error(tmp_path: Path, paths: list[str], cluster: str) -> str:
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    synth = _synth("independent", ledger=ledger, engine="dask", scheduler=cluster)
    with pytest.raises(DataValidationError) as e:
        synth.fit(paths)
    assert ledger.spends == [] and not hasattr(synth, "ledger_")
    return str(e.value)


def _spoil(df: pd.DataFrame, rows: list[int], column: str, value: object) -> pd.DataFrame:
    out = df.astype({column: object}).copy()
    for r in rows:
        out.iloc[r, out.columns.get_loc(column)] = value
    return out


@pytest.mark.parametrize(
    ("column", "value", "rows"),
    [
        ("color", "purple", [5, 1100, 1101]),  # unknown category, in two partitions
        ("code", 9, [700]),  # unknown numeric category
        ("age", "old", [3, 1490]),  # text in an integer column
        ("age", 150, [1200]),  # out of bounds
        ("age", 2.5, [999]),  # fractional integer
        ("flag", np.nan, [600, 601]),  # missing where the schema allows none
    ],
)
def test_bad_value_in_one_partition_same_sentence(
    column: str, value: object, rows: list[int], cluster: str, tmp_path: Path, small_blocks: None
) -> None:
    df = _spoil(make_small_df(N_ROWS, seed=4), rows, column, value)
    expected = _default_error(tmp_path, df)
    assert _dask_error(tmp_path, _files(tmp_path, df), cluster) == expected


def test_first_failing_column_is_the_default_paths(cluster: str, tmp_path: Path, small_blocks: None) -> None:
    """Partition 1 fails on a late column, partition 3 on an early one: the early one is reported."""
    df = _spoil(make_small_df(N_ROWS, seed=5), [10], "flag", "maybe")
    df = _spoil(df, [1400], "color", "black")
    expected = _default_error(tmp_path, df)
    assert "'color'" in expected
    assert _dask_error(tmp_path, _files(tmp_path, df), cluster) == expected


def test_missing_column_in_one_file(cluster: str, tmp_path: Path) -> None:
    df = make_small_df(N_ROWS, seed=6)
    paths = _files(tmp_path, df)
    write_table(df.iloc[1000:].drop(columns=["score"]), paths[2])
    expected = _default_error(tmp_path, df.drop(columns=["score"]))
    assert _dask_error(tmp_path, paths, cluster) == expected
    assert "'score'" in expected


def test_schema_mismatch_in_one_parquet_file(cluster: str, tmp_path: Path) -> None:
    """One Parquet file holds text where the others hold integers: the default path's sentence."""
    df = make_small_df(N_ROWS, seed=7)
    paths = _files(tmp_path, df, 3, ".parquet")
    odd = df.iloc[1000:].astype({"age": str})
    odd.iloc[7, odd.columns.get_loc("age")] = "n/a"
    write_table(odd, paths[2])
    whole = pd.concat([df.iloc[:1000].astype({"age": object}), odd.astype({"age": object})])
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    with pytest.raises(DataValidationError) as e:
        _synth("independent", ledger=ledger).fit(whole.reset_index(drop=True))
    assert _dask_error(tmp_path, paths, cluster) == str(e.value)


# -- refusals before anything is read ----------------------------------------------------------------
def test_refusals(cluster: str, tmp_path: Path) -> None:
    df = make_small_df(50)
    with pytest.raises(DataValidationError, match="pass the path"):
        _synth("independent", engine="dask", scheduler=cluster).fit(df)
    with pytest.raises(EngineError, match="reads rows by position"):
        _synth("dp2-vae", engine="dask", scheduler=cluster).fit(_files(tmp_path, df))
    with pytest.raises(SchemaError, match="declared schema"):
        Synthesizer(backend="independent", schema="infer", engine="dask", scheduler=cluster).fit(
            _files(tmp_path, df)
        )
    with pytest.raises(EngineError, match="Unknown engine"):
        _synth("independent", engine="spark").fit(df)


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(EngineError, match=r"pip install 'tabpriv\[dask\]'"):
        _synth("independent", engine="dask").fit([str(tmp_path / "x.csv")])


def test_import_tabpriv_does_not_import_dask() -> None:
    code = (
        "import sys, tabpriv; sys.exit(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_engine_dask_writes_the_default_engines_table(cluster: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tabpriv.cli import app

    df = make_small_df(N_ROWS, seed=8)
    folder = tmp_path / "parts"
    folder.mkdir()
    _files(folder, df)
    whole = tmp_path / "whole.csv"
    write_table(df, whole)
    schema = tmp_path / "small.schema.json"
    make_small_schema().to_json(schema)
    common = ["--schema", str(schema), "--backend", "independent", "--seed", "3", "--rows", "300"]
    runner = CliRunner()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    res = runner.invoke(app, ["synthesize", str(whole), *common, "-o", str(a)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["synthesize", str(folder), *common, "-o", str(b), "--engine", "dask", "--scheduler", cluster]
    )
    assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    res = runner.invoke(app, ["synthesize", str(whole), *common, "--scheduler", cluster])
    assert res.exit_code != 0 and "--engine dask only" in res.output


def test_no_scheduler_starts_and_stops_a_local_cluster(tmp_path: Path) -> None:
    df = make_small_df(400, seed=9)
    a = _synth("independent").fit(_whole(tmp_path, df))
    b = _synth("independent", engine="dask").fit(_files(tmp_path, df))  # LocalCluster on 127.0.0.1
    pd.testing.assert_frame_equal(a.sample(100), b.sample(100))


def test_csv_partitions_are_a_multiple_of_the_workers(tmp_path: Path) -> None:
    df = make_small_df(60_000, seed=10)
    p = tmp_path / "big.csv"
    write_table(df, p)
    size = p.stat().st_size
    assert 2**20 < size < 64 * 2**20
    one, _ = dask_engine.list_pieces(str(p), make_small_schema(), n_workers=1)
    two, _ = dask_engine.list_pieces(str(p), make_small_schema(), n_workers=2)
    assert len(one) == 1 and len(two) == 2
    assert sum(pc.length or 0 for pc in two) == size
