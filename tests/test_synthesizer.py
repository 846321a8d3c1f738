from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tabpriv
from tabpriv import Synthesizer
from tabpriv.errors import (
    BudgetExceededError,
    DataValidationError,
    PrivacyParameterError,
    PrivacyWarning,
    SaveFileError,
    SchemaError,
    UnknownBackendError,
)

from .conftest import make_small_df, make_small_schema


def test_import_is_lazy() -> None:
    code = (
        "import sys, tabpriv, tabpriv.cli.app; "
        "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'opacus') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_jax_backends_never_import_torch() -> None:
    # aim/mst compute with JAX; asking torch for a GPU would cost 220 MB of resident memory and ~2 s.
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "from tabpriv import Synthesizer\n"
        "from tests.conftest import make_small_df, make_small_schema\n"
        "for b, p in (('mst', {'iters': 20}), ('aim', {'iters': 20, 'round_iters': 5, 'rounds': 8})):\n"
        "    s = Synthesizer(backend=b, epsilon=2.0, schema=make_small_schema(), random_state=0,"
        " backend_params=p)\n"
        "    s.fit(make_small_df(200, seed=0)); s.sample(50)\n"
        "    print(s.device_, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.stdout.split() == ["cpu", "False"] * 2


def test_adult_end_to_end(adult_df, adult_schema) -> None:
    synth = Synthesizer(epsilon=5.1, schema=adult_schema, random_state=1).fit(adult_df)
    out = synth.sample()
    assert list(out.columns) == list(adult_df.columns)
    assert list(out.dtypes) == [c.output_dtype for c in adult_schema]
    assert isinstance(out.index, pd.RangeIndex)
    assert len(out) == len(adult_df)
    adult_schema.validate(out)
    rep = synth.privacy_report
    assert rep.epsilon <= 5.1 and rep.end_to_end_dp and rep.schema_source == "declared"
    assert rep.rows_in == 32561 and rep.rows_out == 32561
    d = json.loads(rep.to_json())
    for key in (
        "backend",
        "guarantee",
        "epsilon",
        "delta",
        "accountant",
        "noise",
        "schema_source",
        "library_version",
        "timestamp",
        "rows_in",
        "rows_out",
        "covered",
        "not_covered",
    ):
        assert key in d
    # the independent backend keeps one-way marginals close: 'sex' share within 0.02
    assert abs((out["sex"] == "Male").mean() - (adult_df["sex"] == "Male").mean()) < 0.02


def test_inferred_schema_warns_and_is_labelled(small_df) -> None:
    with pytest.warns(PrivacyWarning):
        synth = Synthesizer(epsilon=1.0, schema="infer", random_state=0).fit(small_df)
    rep = synth.privacy_report
    assert not rep.end_to_end_dp
    assert "not end-to-end DP: domain inferred from the data" in rep.warnings
    assert "NOT end-to-end DP" in rep.headline


def test_no_schema_is_an_error(small_df) -> None:
    with pytest.raises(SchemaError, match="No schema given"):
        Synthesizer(epsilon=1.0).fit(small_df)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"epsilon": 0}, PrivacyParameterError, "epsilon"),
        ({"epsilon": float("nan")}, PrivacyParameterError, "epsilon"),
        ({"epsilon": float("inf")}, PrivacyParameterError, "epsilon"),
        ({"delta": 0.0}, PrivacyParameterError, "delta"),
        ({"delta": 0.01}, PrivacyParameterError, "1/n"),
        ({"backend": "nope"}, UnknownBackendError, "available backends are: .*independent"),
        ({"backend_params": {"colour": 1}}, PrivacyParameterError, "backend_params"),
        ({"device": "tpu"}, tabpriv.errors.DeviceError, "Unknown device"),
    ],
)
def test_bad_parameters(kwargs, error, fragment) -> None:
    params = {"epsilon": 1.0, "schema": make_small_schema(), **kwargs}
    with pytest.raises(error, match=fragment):
        Synthesizer(**params).fit(make_small_df(300))


def test_bad_rows_and_not_fitted() -> None:
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=0).fit(make_small_df())
    for bad in (0, -3, 2.5):
        with pytest.raises(DataValidationError, match="positive integer"):
            synth.sample(bad)  # type: ignore[arg-type]


def test_refit_adds_to_ledger() -> None:
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=0).fit(make_small_df())
    with pytest.raises(BudgetExceededError, match="spent"):
        synth.fit(make_small_df())
    assert len(synth.ledger_.spends) == 1


def test_clip_is_reported() -> None:
    df = make_small_df()
    df.loc[0, "age"] = 500
    with pytest.raises(DataValidationError, match="outside the declared bounds"):
        Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(df)
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), clip=True).fit(df)
    report = synth.privacy_report.to_dict()
    assert "clipped_values" not in report  # the exact count is private: never released
    assert any("clipped" in c and "not released" in c for c in report["covered"])
    assert df.loc[0, "age"] == 500


def test_os_entropy_by_default() -> None:
    a = Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(make_small_df())
    b = Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(make_small_df())
    assert not a.privacy_report.seeded
    assert not np.array_equal(a.backend_.noisy_counts_[0], b.backend_.noisy_counts_[0])


def test_synthesize_function_and_accessor(small_df) -> None:
    out = tabpriv.synthesize(small_df, epsilon=2.0, schema=make_small_schema(), n_rows=50)
    assert out.shape == (50, 5) and out.attrs["privacy_report"]["epsilon"] <= 2.0
    out2 = small_df.tabpriv.synthesize(epsilon=2.0, schema=make_small_schema(), n_rows=7)
    assert len(out2) == 7


def test_corrupt_foreign_and_tampered_save_files(tmp_path) -> None:
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=0).fit(make_small_df())
    good = tmp_path / "m.tabpriv"
    synth.save(good)
    blob = good.read_bytes()

    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text").write_text("hello world, not a model")
    (tmp_path / "trunc").write_bytes(blob[: len(blob) // 2])
    tampered = bytearray(blob)
    tampered[-3] ^= 0xFF  # flip bits in the array payload
    (tmp_path / "tampered").write_bytes(bytes(tampered))
    # a pickle (the classic code-execution vector) must be refused without being unpickled
    import pickle

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (exec, ("open('" + str(tmp_path / "pwned") + "', 'w').write('x')",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    for name, fragment in [
        ("empty", "not a tabpriv"),
        ("text", "not a tabpriv"),
        ("trunc", "not a tabpriv"),
        ("tampered", "integrity"),
        ("evil.pkl", "not a tabpriv"),
        ("missing", "Cannot read"),
    ]:
        with pytest.raises(SaveFileError, match=fragment):
            Synthesizer.load(tmp_path / name)
    assert not (tmp_path / "pwned").exists()


def test_save_file_from_other_version_refused(tmp_path, monkeypatch) -> None:
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=0).fit(make_small_df())
    path = tmp_path / "m.tabpriv"
    monkeypatch.setattr("tabpriv.synthesizer.__version__", "0.0.1")
    synth.save(path)
    monkeypatch.undo()
    with pytest.raises(SaveFileError, match="0.0.1"):
        Synthesizer.load(path)


def test_non_dataframe_input() -> None:
    with pytest.raises(DataValidationError, match="DataFrame"):
        Synthesizer(epsilon=1.0, schema=make_small_schema()).fit([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="no rows"):
        Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(pd.DataFrame(columns=["color"]))


def test_shared_ledger_across_backends_shows_total() -> None:
    from tabpriv.backends import get_backend_class
    from tabpriv.budget import PrivacyBudget, PrivacyLedger

    data_ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    first = Synthesizer(
        epsilon=1.0, delta=5e-6, schema=make_small_schema(), random_state=0, ledger=data_ledger
    ).fit(make_small_df())
    assert first.privacy_report.epsilon == pytest.approx(1.0)
    second = Synthesizer(
        backend="slicing", epsilon=1.5, delta=5e-6, schema=make_small_schema(), random_state=0,
        backend_params=dict(get_backend_class("slicing").quick_params), ledger=data_ledger,
    ).fit(make_small_df())  # fmt: skip
    # capped by what the data's ledger had left (1.0), and the report shows the total
    assert second.privacy_report.epsilon <= 1.0 + 1e-9
    extra = second.privacy_report.extra
    assert extra["data_total_epsilon"] == pytest.approx(data_ledger.epsilon_spent)
    assert data_ledger.epsilon_spent <= 2.0 + 1e-9 and len(data_ledger.spends) == 2
    with pytest.raises(BudgetExceededError, match="spent"):
        Synthesizer(epsilon=0.5, schema=make_small_schema(), ledger=data_ledger).fit(make_small_df())
    assert len(data_ledger.spends) == 2
