"""Safe files (tampered metadata with a *valid* digest, oversized header) and budget safety."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tabpriv import Synthesizer
from tabpriv.errors import BudgetExceededError, SaveFileError, TabprivError
from tabpriv.synthesizer import _META_KEY, _digest

from ..conftest import make_small_df, make_small_schema


def _saved(tmp_path):  # type: ignore[no-untyped-def]
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=0).fit(make_small_df())
    path = tmp_path / "m.tabpriv"
    synth.save(path)
    return path


def _rewrite(path, out, edit) -> None:  # type: ignore[no-untyped-def]
    """Re-save with edited metadata and a *recomputed, valid* digest (an attacker who knows the format)."""
    from safetensors.numpy import load, save

    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = json.loads(header["__metadata__"][_META_KEY])
    arrays = load(blob)
    meta, arrays = edit(meta, arrays)
    text = json.dumps(meta, sort_keys=True)
    out.write_bytes(save(arrays, metadata={_META_KEY: text, "sha256": _digest(arrays, text)}))


@pytest.mark.parametrize(
    ("name", "edit", "fragment"),
    [
        ("foreign-format", lambda m, a: ({**m, "format": "sklearn-pickle"}, a), "not a tabpriv"),
        ("future-version", lambda m, a: ({**m, "format_version": 99}, a), "format 99"),
        (  # format 1 held the exact count of clipped values (not private): refused, refit
            "format-1-clip-counts",
            lambda m, a: (
                {**{k: v for k, v in m.items() if k != "clip"}, "format_version": 1, "clipped": {}},
                a,
            ),
            "format-1 file, which holds the exact count of clipped values .* refit",
        ),
        ("no-clip-flag", lambda m, a: ({k: v for k, v in m.items() if k != "clip"}, a), "invalid content"),
        ("other-library", lambda m, a: ({**m, "library_version": "9.9.9"}, a), "9.9.9"),
        ("not-a-dict", lambda m, a: (["a", "list"], a), "not a tabpriv"),
        ("unknown-backend", lambda m, a: ({**m, "backend": "os.system"}, a), "backend"),
        ("spans-mismatch", lambda m, a: ({**m, "spans": m["spans"][:-1]}, a), "spans"),
        ("missing-arrays", lambda m, a: (m, {}), "invalid content"),
        ("schema-garbage", lambda m, a: ({**m, "schema": {"columns": 3}}, a), "."),
        ("columns-mismatch", lambda m, a: ({**m, "columns": ["x"]}, a), "column"),
        (
            "code-in-params",
            lambda m, a: ({**m, "backend_params": {"bins": "__import__('os').system('x')"}}, a),
            "bins",
        ),
    ],
)
def test_tampered_metadata_with_valid_digest_is_refused(tmp_path, name, edit, fragment) -> None:  # type: ignore[no-untyped-def]
    path = _saved(tmp_path)
    bad = tmp_path / f"{name}.tabpriv"
    _rewrite(path, bad, edit)
    before = bad.read_bytes()
    with pytest.raises(TabprivError, match=fragment) as info:
        loaded = Synthesizer.load(bad)
        loaded.sample(5)  # a value that only fails when used must fail with a TabprivError too
    assert len(str(info.value)) > 20
    assert bad.read_bytes() == before  # the file is never modified


def test_oversized_and_lying_headers_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _saved(tmp_path)
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    cases = {
        "huge-length": struct.pack("<Q", 2**62) + blob[8:],
        "zero-length": struct.pack("<Q", 0) + blob[8:],
        "length-past-end": struct.pack("<Q", len(blob)) + blob[8:],
        "header-not-json": blob[:8] + b"\xff" * n + blob[8 + n :],
        # array offsets pointing outside the data section
        "bad-offsets": (lambda h: struct.pack("<Q", len(h)) + h + blob[8 + n :])(
            json.dumps(
                {
                    k: ({**v, "data_offsets": [0, 10**12]} if isinstance(v, dict) and "dtype" in v else v)
                    for k, v in json.loads(blob[8 : 8 + n]).items()
                }
            ).encode()
        ),
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(SaveFileError):
            Synthesizer.load(p)


def test_seeded_run_is_marked_and_default_is_os_entropy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seeded = Synthesizer(epsilon=1.0, schema=make_small_schema(), random_state=7).fit(make_small_df())
    assert seeded.privacy_report.seeded
    assert "SEEDED" in seeded.privacy_report.headline and "secret" in seeded.privacy_report.headline
    # the mark survives save/load
    path = tmp_path / "s.tabpriv"
    seeded.save(path)
    assert Synthesizer.load(path).privacy_report.seeded
    # the seed itself is never written to the file
    assert b"random_state" not in path.read_bytes() and b'"seed"' not in path.read_bytes()
    a = Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(make_small_df())
    assert not a.privacy_report.seeded and "SEEDED" not in a.privacy_report.headline


def test_sampling_and_reloading_spend_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    synth = Synthesizer(epsilon=1.0, schema=make_small_schema()).fit(make_small_df())
    spent = synth.ledger_.epsilon_spent
    for _ in range(3):
        synth.sample(20)
    assert synth.ledger_.epsilon_spent == spent and len(synth.ledger_.spends) == 1
    path = tmp_path / "m.tabpriv"
    synth.save(path)
    loaded = Synthesizer.load(path)
    loaded.sample(10)
    assert loaded.ledger_.epsilon_spent == pytest.approx(spent)
    # a loaded, spent synthesizer cannot be refitted silently
    with pytest.raises(BudgetExceededError):
        loaded.fit(make_small_df())
    assert len(loaded.ledger_.spends) == 1


def test_report_total_is_sum_of_spends() -> None:
    from tabpriv.budget import PrivacyBudget, PrivacyLedger

    ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    ledger.spend(mechanism="a", epsilon=0.7, delta=3e-6, accountant="x", parameters={})
    ledger.spend(mechanism="b", epsilon=0.9, delta=3e-6, accountant="x", parameters={})
    assert ledger.epsilon_spent == pytest.approx(1.6) and ledger.delta_spent == pytest.approx(6e-6)
    with pytest.raises(BudgetExceededError):
        ledger.spend(mechanism="c", epsilon=0.5, delta=1e-7, accountant="x", parameters={})
    assert np.isclose(ledger.epsilon_left, 0.4)
