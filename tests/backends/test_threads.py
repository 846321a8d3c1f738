"""Torch thread settings of the torch backends (``tabpriv._device``; issue 18): rule, override, restore."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tabpriv._device import DEFAULT_THREADS, THREADS_ENV, resolve_threads, torch_threads  # noqa: E402
from tabpriv.errors import PrivacyParameterError  # noqa: E402

from .._helpers import quick_synthesizer  # noqa: E402
from ..conftest import make_small_df  # noqa: E402

TORCH_BACKENDS = ("slicing", "lipschitz-vae", "dpsgd-vae", "dp2-vae")


def test_rule_parameter_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads(None) == DEFAULT_THREADS == 1
    assert resolve_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resolve_threads(None) == 2
    assert resolve_threads(1) == 1  # the parameter wins over the environment


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_env_value_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(PrivacyParameterError, match=THREADS_ENV):
        resolve_threads(None)


@pytest.mark.parametrize("bad", [0, -2, True, 1.0])
def test_bad_parameter_is_refused(bad: object) -> None:
    with pytest.raises(PrivacyParameterError, match="threads must be"):
        resolve_threads(bad)  # type: ignore[arg-type]


def test_torch_threads_restores_the_callers_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), torch_threads(2):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _fit(backend: str, threads: int | None, seed: int = 0):  # type: ignore[no-untyped-def]
    params = {} if threads is None else {"threads": threads}
    return quick_synthesizer(backend, epsilon=5.0, seed=seed, device="auto", **params).fit(make_small_df(120))


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_backend_sets_threads_only_during_its_calls(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = torch.set_num_threads

    def spy(n: int) -> None:
        calls.append(n)
        real(n)

    before = torch.get_num_threads()
    try:
        real(1)
        monkeypatch.setattr(torch, "set_num_threads", spy)
        synth = _fit(backend, threads=2)
        assert calls and calls[0] == 2 and calls[-1] == 1  # set for the fit, then restored
        assert torch.get_num_threads() == 1
        calls.clear()
        synth.sample(50)
        assert calls == [2, 1]  # one set and one restore around the sample
        assert torch.get_num_threads() == 1
    finally:
        monkeypatch.undo()
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_threads_parameter_is_validated(backend: str) -> None:
    with pytest.raises(PrivacyParameterError, match="threads"):
        _fit(backend, threads=0)


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_same_seed_same_table_at_one_and_two_threads(backend: str) -> None:
    a = _fit(backend, threads=1).sample(200)
    b = _fit(backend, threads=2).sample(200)
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=0, atol=0, equal_nan=True)
        else:
            assert x.astype(object).equals(y.astype(object)), col
