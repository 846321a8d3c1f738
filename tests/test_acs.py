"""Tests of the folktables ACS loader on a SYNTHETIC fixture (no quality figure is ever read from it)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tabpriv.acs import ACS_TASKS, SYNTHETIC_NOTE, acs, acs_file_path, acs_schema, make_acs_fixture
from tabpriv.errors import InputFileError, SchemaError, TabprivError

pytest.importorskip("folktables")

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "tabpriv" / "acs_schemas"

# Feature lists and targets as published by folktables 0.0.12 (see shared/datasets/README.md).
EXPECTED = {
    "ACSIncome": ("AGEP COW SCHL MAR OCCP POBP RELP WKHP SEX RAC1P", "PINCP"),
    "ACSPublicCoverage": (
        "AGEP SCHL MAR SEX DIS ESP CIT MIG MIL ANC NATIVITY DEAR DEYE DREM PINCP ESR ST FER RAC1P",
        "PUBCOV",
    ),
    "ACSMobility": (
        "AGEP SCHL MAR SEX DIS ESP CIT MIL ANC NATIVITY RELP DEAR DEYE DREM RAC1P GCL COW ESR WKHP "
        "JWMNP PINCP",
        "MIG",
    ),
    "ACSEmployment": (
        "AGEP SCHL MAR RELP DIS ESP CIT MIG MIL ANC NATIVITY DEAR DEYE DREM SEX RAC1P",
        "ESR",
    ),
    "ACSTravelTime": (
        "AGEP SCHL MAR SEX DIS ESP MIG RELP RAC1P PUMA ST CIT OCCP JWTR POWPUMA POVPIP",
        "JWMNP",
    ),
}


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("acs")
    make_acs_fixture(root, n=2000, seed=0)
    return root


def test_fixture_layout_and_label(fixture_root: Path) -> None:
    path = fixture_root / "2018" / "1-Year" / "psam_p06.csv"
    assert path.is_file()
    assert acs_file_path(fixture_root) == path
    assert (path.parent / "README.txt").read_text().strip() == SYNTHETIC_NOTE
    raw = pd.read_csv(path)
    assert len(raw) == 2000
    assert set(raw["RT"]) == {"S"}  # marked synthetic in every row


def test_fixture_is_deterministic(tmp_path: Path) -> None:
    a = make_acs_fixture(tmp_path / "a", seed=3, n=200).read_bytes()
    b = make_acs_fixture(tmp_path / "b", seed=3, n=200).read_bytes()
    assert a == b


@pytest.mark.parametrize("task", ACS_TASKS)
def test_schema_is_declared_and_documented(task: str) -> None:
    schema = acs_schema(task)
    features, target = EXPECTED[task]
    assert schema.names == [*features.split(), target]
    assert not schema.is_inferred
    doc = json.loads((SCHEMA_DIR / f"{task}.schema.json").read_text())
    for col in doc["columns"]:
        assert col.get("description"), f"{task}.{col['name']} lacks a description"
    assert schema[target].categories == (False, True)


@pytest.mark.parametrize("task", ACS_TASKS)
def test_acs_loads_fixture_and_matches_folktables(task: str, fixture_root: Path) -> None:
    import folktables
    import numpy as np

    df, schema = acs(task, root_dir=fixture_root)
    _conformed, summary = schema.validate(df)  # every value inside the declared codes
    assert summary.n_clipped == 0
    assert list(df.columns) == schema.names
    assert len(df) > 100
    # Same rows and values as folktables' own df_to_numpy on the same file.
    src = folktables.ACSDataSource(
        survey_year="2018", horizon="1-Year", survey="person", root_dir=str(fixture_root)
    )
    x, y, _ = getattr(folktables, task).df_to_numpy(src.get_data(states=["CA"], download=False))
    assert x.shape == (len(df), len(schema) - 1)
    np.testing.assert_allclose(df.iloc[:, :-1].to_numpy(dtype=float), x, rtol=0, atol=0)
    np.testing.assert_array_equal(df.iloc[:, -1].to_numpy(), y.astype(bool))
    assert 0.05 < df.iloc[:, -1].mean() < 0.95  # both labels occur on the fixture


def test_income_filter_and_target(fixture_root: Path) -> None:
    df, _ = acs("ACSIncome", root_dir=fixture_root)
    assert (df["AGEP"] > 16).all()
    assert (df["WKHP"] > 0).all()
    assert df["PINCP"].dtype == bool


def test_missing_file_is_friendly(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"psam_p06\.csv.*download=True") as info:
        acs("ACSIncome", root_dir=tmp_path)
    assert isinstance(info.value, TabprivError)
    assert isinstance(info.value, OSError)


def test_unknown_task_and_state(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="ACSIncome"):
        acs("ACSWealth", root_dir=tmp_path)
    with pytest.raises(InputFileError, match="ZZ"):
        acs_file_path(tmp_path, state="ZZ")
    assert acs_file_path(tmp_path, "NY", 2016).name == "ss16pny.csv"


NOMINAL_AS_NUMBER = {"ACSIncome": ("OCCP", "POBP"), "ACSTravelTime": ("PUMA", "OCCP", "POWPUMA")}


@pytest.mark.parametrize("task", sorted(NOMINAL_AS_NUMBER))
def test_nominal_codes_kept_as_integer_ranges_say_why(task: str) -> None:
    """OCCP, POBP, PUMA and POWPUMA are nominal codes; without the data dictionary's code lists offline
    they stay integer ranges, and their descriptions say so and what it costs."""
    schema = acs_schema(task)
    doc = json.loads((SCHEMA_DIR / f"{task}.schema.json").read_text())
    descriptions = {c["name"]: c["description"] for c in doc["columns"]}
    for name in NOMINAL_AS_NUMBER[task]:
        assert schema[name].kind == "integer"
        text = descriptions[name]
        assert "NOMINAL CODE DECLARED AS A NUMBER" in text
        assert "PUMS_Data_Dictionary_2018" in text and "bins this column as a number" in text
    assert "nominal codes declared as integer ranges" in doc["description"]
