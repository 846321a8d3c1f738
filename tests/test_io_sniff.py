import gzip
import warnings

import pytest

from tabpriv.errors import DataWarning, InputFileError
from tabpriv.io import read_table, sniff_delimiter

ROWS = [["age", "city", "income"], ["31", "Paris, FR", "1200.5"], ["45", "Lyon", "980"], ["52", "Nice", ""]]


def _write(path, sep: str, rows=ROWS) -> None:
    def cell(v: str) -> str:
        return f'"{v}"' if sep in v or "," in v else v

    path.write_text("\n".join(sep.join(cell(v) for v in r) for r in rows) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "vertical bar")])
def test_semicolon_tab_and_bar_files_are_read_and_the_delimiter_is_named(tmp_path, sep, name) -> None:
    p = tmp_path / "t.csv"
    _write(p, sep)
    assert sniff_delimiter(p) == sep
    with pytest.warns(DataWarning, match=f"with a {name} ") as rec:
        df = read_table(p)
    assert len(rec) == 1
    assert list(df.columns) == ["age", "city", "income"]
    assert df["city"].tolist() == ["Paris, FR", "Lyon", "Nice"]
    assert df["income"].isna().tolist() == [False, False, True]


def test_comma_file_reads_without_a_warning_even_with_semicolons_in_text(tmp_path) -> None:
    p = tmp_path / "t.csv"
    rows = [["a", "note"], ["1", '"x; y"'], ["2", "z"]]
    p.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    assert sniff_delimiter(p) == ","
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_table(p)
    assert df["note"].tolist() == ["x; y", "z"]


def test_explicit_sep_is_used_without_a_warning(tmp_path) -> None:
    p = tmp_path / "t.csv"
    _write(p, ";")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_table(p, sep=";")
    assert df.shape == (3, 3)
    with pytest.raises(InputFileError, match="one character"):
        read_table(p, sep=";;")


def test_gzipped_semicolon_file(tmp_path) -> None:
    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("a;b\n1;2\n3;4\n")
    assert sniff_delimiter(p) == ";"
    with pytest.warns(DataWarning, match="semicolon"):
        assert read_table(p).shape == (2, 2)


def test_sniffing_ignores_a_record_cut_at_the_sample_end(tmp_path) -> None:
    p = tmp_path / "big.csv"
    lines = ["a;b;c"] + [f"{i};x{i};{i * 2}" for i in range(20_000)]  # > 64 KiB
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert p.stat().st_size > 1 << 16
    assert sniff_delimiter(p) == ";"


def test_ragged_row_gives_one_sentence_naming_the_line_and_no_row_text(tmp_path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("a,b,c\n1,2,3\n4,secret-value,6,7\n", encoding="utf-8")
    with pytest.raises(InputFileError) as exc:
        read_table(p)
    msg = str(exc.value)
    assert "line 3 has 4 comma-separated fields where the earlier lines have 3" in msg
    assert "secret-value" not in msg and "Error tokenizing" not in msg
    assert msg.count(". ") == 0 and msg.endswith(".")


def test_single_column_file_is_read_as_one_column(tmp_path) -> None:
    p = tmp_path / "one.csv"
    p.write_text("x\n1\n2\n", encoding="utf-8")
    assert sniff_delimiter(p) == ","
    assert read_table(p)["x"].tolist() == [1, 2]
