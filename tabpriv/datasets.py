"""Bundled and shared census tables.

* ``tabpriv/data/adult.csv`` (bundled as package data, so it is there in any install; UCI Adult train
  split, CC BY 4.0) and its hand-written public schema ``tabpriv/data/adult.schema.json``. In a
  checkout, ``datasets/adult.*`` are symbolic links to them.
* ``../shared/datasets/`` beside the checkout: the full Adult train/test splits and other census tables
  used by tests and benchmarks.
* :func:`acs` loads the folktables ACS tasks (needs the ACS person files; see ``tabpriv.acs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tabpriv.errors import InputFileError

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Schema

__all__ = [
    "ADULT_COLUMNS",
    "BUNDLED_DIR",
    "SHARED_DIR",
    "acs",
    "adult_schema",
    "bundled_adult_path",
    "load_adult",
]

#: Folder of the bundled data (``tabpriv/data/``, package data: present in editable and wheel installs).
BUNDLED_DIR = Path(__file__).resolve().parent / "data"
#: Folder of the shared real census tables (``../shared/datasets`` beside the checkout).
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
    "native-country", "income",
]  # fmt: skip


def bundled_adult_path() -> Path:
    """Path of the bundled Adult training table (``tabpriv/data/adult.csv``)."""
    return BUNDLED_DIR / "adult.csv"


def adult_schema() -> Schema:
    """The hand-written public schema of Adult (``tabpriv/data/adult.schema.json``)."""
    from tabpriv.schema import Schema

    return Schema.load(BUNDLED_DIR / "adult.schema.json")


def load_adult(split: Literal["train", "test"] = "train") -> pd.DataFrame:
    """Load a split of UCI Adult with the dtypes pandas gives the bundled CSV.

    ``"train"`` reads the bundled file; ``"test"`` reads ``../shared/datasets/adult/adult.test`` (labels
    with their trailing ``.`` removed).

    Raises:
        InputFileError: The file is not present.

    """
    import pandas as pd

    if split == "train":
        from tabpriv.io import read_table

        return read_table(bundled_adult_path(), adult_schema())
    if split != "test":
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    path = SHARED_DIR / "adult" / "adult.test"
    if not path.exists():
        raise InputFileError(
            f"Adult's test split is not at {str(path)!r}; it lives in ../shared/datasets beside the checkout."
        )
    df = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?", skiprows=1)
    df["income"] = df["income"].str.rstrip(".")
    return df


def acs(task: str, **kwargs: Any) -> tuple[pd.DataFrame, Schema]:
    """Load a folktables ACS task with its public schema (see :func:`tabpriv.acs.acs`)."""
    from tabpriv import acs as _acs

    result: tuple[pd.DataFrame, Schema] = _acs.acs(task, **kwargs)
    return result
