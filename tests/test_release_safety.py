"""API side of tabpriv issue 13: clip counts never released, streaming samples with a memory rule for the
in-memory one, output-path checks and modes, and the weak-epsilon warning."""

from __future__ import annotations

import json
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.budget import WEAK_EPSILON, PrivacyBudget, PrivacyLedger
from tabpriv.errors import DataValidationError, InputFileError, PrivacyWarning, ResourceLimitError
from tabpriv.io import check_output_paths, read_table, write_table, write_table_chunks
from tabpriv.schema import Column, Schema
from tabpriv.synthesizer import _META_KEY, sample_nbytes

from .conftest import make_small_df, make_small_schema


def _fit(df: pd.DataFrame | None = None, **kw: Any) -> Synthesizer:
    kw.setdefault("epsilon", 1.0)
    return Synthesizer(schema=make_small_schema(), random_state=kw.pop("seed", 0), **kw).fit(
        make_small_df() if df is None else df
    )


# -- item 1: clip counts ---------------------------------------------------------------------------
def _with_out_of_range(k: int) -> pd.DataFrame:
    df = make_small_df()
    df.loc[: k - 1, "age"] = 1000  # k values above the declared upper bound 99
    return df


def _released(synth: Synthesizer, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report and the save-file metadata, without timestamps."""
    report = synth.privacy_report.to_dict()
    report.pop("timestamp")
    path = tmp / "m.tabpriv"
    synth.save(path)
    blob = path.read_bytes()
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    meta = json.loads(header["__metadata__"][_META_KEY])
    for spends in (report["spends"], meta["ledger"]):
        for s in spends:
            s.pop("timestamp")
    return report, meta


@pytest.mark.parametrize(("a", "b"), [(2, 3), (0, 1)])
def test_clip_counts_are_never_released(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, a: int, b: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="tabpriv")
    logs = []
    released = []
    for k in (a, b):
        caplog.clear()
        synth = _fit(_with_out_of_range(k) if k else make_small_df(), clip=True)
        released.append(_released(synth, tmp_path))
        logs.append([r.getMessage() for r in caplog.records])
        assert not hasattr(synth, "clipped_")
    # Neighbouring tables (one out-of-range value more): identical report, save file and logs.
    assert released[0] == released[1]
    assert logs[0] == logs[1]
    report, meta = released[0]
    assert "clipped_values" not in report and "clipped" not in meta
    assert any("clipped" in c and "not released" in c for c in report["covered"])


def test_clip_statement_follows_the_request_not_the_data() -> None:
    covered = _fit().privacy_report.covered
    assert not any("clipped" in c for c in covered)


def test_loaded_synthesizer_keeps_the_clip_statement(tmp_path: Path) -> None:
    synth = _fit(_with_out_of_range(1), clip=True)
    synth.save(tmp_path / "m.tabpriv")
    again = Synthesizer.load(tmp_path / "m.tabpriv")
    assert again.privacy_report.covered == synth.privacy_report.covered


# -- item 10: streaming sample and the in-memory rule ----------------------------------------------
def test_sample_chunks_are_the_rows_of_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Synthesizer, "sample_chunk_max_rows", 64)
    a, b = _fit(seed=5), _fit(seed=5)
    whole = a.sample(1000)
    gen = b.sample_chunks(1000)
    assert b.privacy_report.rows_out is None  # set once the last block is drawn
    chunks = list(gen)
    assert [len(c) for c in chunks] == [64] * 15 + [40]
    assert [c.index[0] for c in chunks] == list(range(0, 1000, 64))
    joined = pd.concat(chunks)
    pd.testing.assert_frame_equal(joined, whole)
    assert b.privacy_report.rows_out == 1000
    # the next call continues the same seeded stream in both
    pd.testing.assert_frame_equal(pd.concat(b.sample_chunks(100)), a.sample(100))


def test_sample_chunks_checks_n_when_called() -> None:
    synth = _fit()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DataValidationError, match="positive integer"):
            synth.sample_chunks(bad)  # type: ignore[arg-type]


def test_sample_nbytes_rule() -> None:
    # small schema: color (object 8) code (float64 8) age (int64 8) score (float64 8) flag (object 8)
    assert sample_nbytes(make_small_schema(), 10) == 10 * (5 * 8 + 8)
    bools = Schema(
        (Column("b", "categorical", categories=(True, False)), Column("x", "integer", lower=0, upper=1))
    )
    assert sample_nbytes(bools, 3) == 3 * (1 + 8 + 8)


def test_in_memory_sample_beyond_available_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from tabpriv import io

    a, b = _fit(seed=3), _fit(seed=3)
    monkeypatch.setattr(io, "available_memory_bytes", lambda: 48 * 500)  # room for 500 rows
    with pytest.raises(ResourceLimitError, match="sample_chunks") as e:
        a.sample(501)
    assert isinstance(e.value, MemoryError) and "GiB" in str(e.value)
    out = a.sample(500)  # within the rule; the refused call did not advance the seeded stream
    pd.testing.assert_frame_equal(out, b.sample(500))
    assert sum(len(c) for c in a.sample_chunks(10_000)) == 10_000  # streaming is not bounded by it
    monkeypatch.setattr(io, "available_memory_bytes", lambda: None)  # unknown: nothing checked
    assert len(a.sample(501)) == 501


def test_available_memory_is_read() -> None:
    from tabpriv.io import available_memory_bytes

    got = available_memory_bytes()
    assert got is None or got > 0


# -- io: chunked writer ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_table_chunks_equals_write_table(tmp_path: Path, suffix: str) -> None:
    df = make_small_df(500)
    one, many = tmp_path / f"one{suffix}", tmp_path / f"many{suffix}"
    write_table(df, tmp_path / f"ref{suffix}")
    assert write_table_chunks([df], one, schema=make_small_schema()) == 500
    assert write_table_chunks((df.iloc[i : i + 64] for i in range(0, 500, 64)), many) == 500
    schema = make_small_schema()
    if suffix == ".csv":
        assert one.read_bytes() == (tmp_path / f"ref{suffix}").read_bytes()
        assert many.read_bytes() == one.read_bytes()
    pd.testing.assert_frame_equal(read_table(many, schema), read_table(tmp_path / f"ref{suffix}", schema))


def test_parquet_chunks_take_their_types_from_the_schema(tmp_path: Path) -> None:
    schema = Schema((Column("t", "categorical", categories=("a", "b"), missing=True),))
    first = pd.DataFrame({"t": pd.Series([np.nan, np.nan], dtype=object)})  # all missing: arrow says null
    second = pd.DataFrame({"t": pd.Series(["a", "b"], dtype=object)})
    write_table_chunks([first, second], tmp_path / "t.parquet", schema=schema)
    got = pd.read_parquet(tmp_path / "t.parquet")["t"].tolist()
    assert got[2:] == ["a", "b"] and pd.isna(got[0]) and pd.isna(got[1])


def test_interrupted_chunked_write_leaves_nothing(tmp_path: Path) -> None:
    def chunks() -> Any:
        yield make_small_df(10)
        raise KeyboardInterrupt

    for name in ("x.csv", "x.parquet"):
        with pytest.raises(KeyboardInterrupt):
            write_table_chunks(chunks(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_table(make_small_df(5), tmp_path / "a.csv")
        assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o600
        os.umask(0o002)
        write_table(make_small_df(5), tmp_path / "b.csv")
        assert stat.S_IMODE((tmp_path / "b.csv").stat().st_mode) == 0o664
        os.chmod(tmp_path / "a.csv", 0o604)
        write_table(make_small_df(5), tmp_path / "a.csv")  # a replaced file keeps its mode
        assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o604
    finally:
        os.umask(old)


# -- item 8: output paths --------------------------------------------------------------------------
def test_check_output_paths(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    os.link(src, tmp_path / "hard.csv")
    os.symlink(src, tmp_path / "soft.csv")
    (tmp_path / "d").mkdir()
    refused = [
        src,
        tmp_path / "hard.csv",
        tmp_path / "soft.csv",
        tmp_path / "d" / ".." / "in.csv",
        Path(os.path.relpath(src)),
    ]
    for out in refused:
        with pytest.raises(InputFileError, match="Refusing to write the out .* it is the in"):
            check_output_paths({"the in": src}, {"the out": out})
    with pytest.raises(InputFileError, match="it is also the first"):
        check_output_paths(
            {}, {"the first": tmp_path / "o.csv", "the second": tmp_path / "d" / ".." / "o.csv"}
        )
    check_output_paths({"the in": src, "none": None}, {"the out": tmp_path / "o.csv", "skip": None})


# -- item 11: weak epsilon -------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [10.0001, 50.0])
def test_weak_epsilon_warns(eps: float) -> None:
    with pytest.warns(PrivacyWarning, match=r"guarantee is weak: .*docs/privacy.md#choosing-epsilon") as rec:
        synth = _fit(epsilon=eps)
    assert sum("weak" in str(w.message) for w in rec) == 1
    rep = synth.privacy_report
    assert rep.weak and "WEAK guarantee" in rep.headline
    assert sum("guarantee is weak" in w for w in rep.warnings) == 1


def test_weak_epsilon_warns_before_anything_is_run() -> None:
    from tabpriv.errors import PrivacyParameterError

    synth = Synthesizer(epsilon=1e6, schema=make_small_schema(), backend_params={"no_such": 1})
    with (
        pytest.warns(PrivacyWarning, match=r"At epsilon = 1e\+06 the guarantee is weak"),
        pytest.raises(PrivacyParameterError, match="no_such"),
    ):
        synth.fit(make_small_df())


@pytest.mark.parametrize("eps", [5.1, WEAK_EPSILON])
def test_no_weak_warning_at_or_below_the_threshold(eps: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synth = _fit(epsilon=eps)
    assert not synth.privacy_report.weak
    assert "WEAK" not in synth.privacy_report.headline
    assert not any("weak" in w for w in synth.privacy_report.warnings)


def test_shared_ledger_total_above_the_threshold_is_warned() -> None:
    data = PrivacyLedger(PrivacyBudget(20.0))
    first = _fit(epsilon=8.0, delta=4e-6, ledger=data)
    assert not any("weak" in w for w in first.privacy_report.warnings)
    second = _fit(epsilon=8.0, delta=4e-6, ledger=data, seed=1)
    assert any(
        w.startswith("every release from this data together: at epsilon = 16")
        for w in second.privacy_report.warnings
    )
