import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tabpriv.errors import DataValidationError, DataWarning
from tabpriv.schema import Schema


def _infer(df: pd.DataFrame) -> tuple[Schema, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = Schema.infer(df, warn=False)
    return s, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def _base(n: int = 50) -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {"age": rng.integers(18, 90, n), "sex": rng.choice(["F", "M"], n)}


def test_clean_table_gets_no_data_warning() -> None:
    _, notes = _infer(pd.DataFrame(_base()))
    assert notes == []


def test_row_number_column_is_flagged_as_id_like() -> None:
    df = pd.DataFrame({"n": np.arange(1, 51), **_base()})
    s, notes = _infer(df)
    assert len(notes) == 1 and "'n' looks like a row identifier" in notes[0]
    assert "consecutive whole numbers" in notes[0] and "drop the column" in notes[0]
    assert s["n"].kind == "integer"  # still in the draft, for the owner to remove


def test_id_named_text_column_is_flagged_but_few_rows_or_repeats_are_not() -> None:
    df = pd.DataFrame({"person_id": [f"P{i:04d}" for i in range(50)], **_base()})
    _, notes = _infer(df)
    assert len(notes) == 1 and "a name like an identifier" in notes[0]
    _, notes = _infer(df.head(10))  # too few rows to tell
    assert notes == []
    shuffled = pd.DataFrame({"score": np.random.default_rng(1).permutation(50) * 3, **_base()})
    _, notes = _infer(shuffled)  # distinct but neither consecutive nor named like an ID
    assert notes == []


def test_numbers_with_stray_na_text_are_pointed_out() -> None:
    vals: list[object] = [str(v) for v in np.random.default_rng(0).integers(0, 1000, 48)] + ["N/A", "N/A"]
    df = pd.DataFrame({"income": vals, **_base()})
    s, notes = _infer(df)
    assert len(notes) == 1
    assert "'income' holds mostly numbers but also text ('N/A')" in notes[0]
    assert "make those cells empty" in notes[0]
    assert s["income"].kind == "categorical"  # unchanged: the draft still validates against the file


def test_long_stray_text_is_counted_not_quoted() -> None:
    secret = "a private remark about someone"
    df = pd.DataFrame({"x": [str(i) for i in range(45)] + [secret] * 5, **_base()})
    _, notes = _infer(df)
    assert any("1 distinct word(s)" in m for m in notes)
    assert all(secret not in m for m in notes)


@pytest.mark.parametrize(
    "values",
    [
        [f"2024-01-{d:02d}" for d in range(1, 29)],
        [f"{d:02d}/03/2023" for d in range(1, 29)],
        [f"2024-01-{d:02d}T12:30:00" for d in range(1, 29)],
    ],
)
def test_date_columns_get_a_message_on_how_to_declare_them(values: list[str]) -> None:
    df = pd.DataFrame({"when": values, "k": ["a"] * len(values)})
    _, notes = _infer(df)
    assert len(notes) == 1 and "'when' holds dates" in notes[0] and "days since 1970-01-01" in notes[0]


def test_datetime_dtype_column_gets_the_date_message() -> None:
    df = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"]), "k": [1, 2, 3]})
    _, notes = _infer(df)
    assert any("'when' holds dates" in m for m in notes)


def test_whole_lines_are_refused_without_quoting_them() -> None:
    rows = [f"{i};Jane Doe {i};secret-{i}" for i in range(30)]
    df = pd.DataFrame({"id;name;note": rows})
    with pytest.raises(DataValidationError) as exc:
        Schema.infer(df, warn=False)
    msg = str(exc.value)
    assert "holds whole lines" in msg and "sep=';'" in msg
    assert "Jane" not in msg and "secret" not in msg


def test_commas_in_free_text_of_a_wide_table_are_not_whole_lines() -> None:
    df = pd.DataFrame({"city": ["Paris, FR", "Lyon, FR", "Nice"] * 10, "k": [1, 2, 3] * 10})
    s, notes = _infer(df)
    assert s["city"].kind == "categorical" and notes == []


def test_cli_schema_infer_shows_warnings_and_never_writes_lines(tmp_path) -> None:
    from tabpriv.cli.app import app

    src = tmp_path / "t.csv"
    src.write_text("row,income\n" + "".join(f"{i},{'N/A' if i % 20 == 0 else i * 7}\n" for i in range(40)))
    out = tmp_path / "draft.schema.json"
    res = CliRunner().invoke(app, ["schema", "infer", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "looks like a row identifier" in res.output and "'N/A'" in res.output
    assert json.loads(out.read_text())["source"] == "inferred"

    # a semicolon file given a comma-only reader would be whole lines: the sniffer reads it right
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n" + "".join(f"{i % 3};x{i % 2}\n" for i in range(30)))
    out2 = tmp_path / "semi.schema.json"
    res = CliRunner().invoke(app, ["schema", "infer", str(semi), "-o", str(out2)])
    assert res.exit_code == 0, res.output
    assert "semicolon" in res.output
    assert [c["name"] for c in json.loads(out2.read_text())["columns"]] == ["a", "b"]
