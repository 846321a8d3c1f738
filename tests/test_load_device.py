"""``Synthesizer.load(path, device=...)``: where a loaded model samples (issue 18), on the CPU.

The GPU case (``device="cuda"``: the model moves and samples as the fitted one) is in
``tests/backends/test_gpu.py``, marked ``gpu``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tabpriv import Synthesizer
from tabpriv.errors import DeviceError, SaveFileError

from ._helpers import quick_synthesizer
from .conftest import make_small_df


def _saved(tmp_path: Path, backend: str) -> tuple[Synthesizer, Path]:
    synth = quick_synthesizer(backend).fit(make_small_df(300))
    path = tmp_path / f"{backend}.tabpriv"
    synth.save(path)
    return synth, path


def test_loaded_torch_model_samples_on_the_given_cpu_device_as_the_fitted_one(tmp_path: Path) -> None:
    synth, path = _saved(tmp_path, "dp2-vae")
    default = Synthesizer.load(path)
    on_cpu = Synthesizer.load(path, device="cpu")
    assert default.device_ == on_cpu.device_ == "cpu"
    assert on_cpu.backend_.device_ == "cpu"  # type: ignore[attr-defined]
    ref = synth.backend_.sample(40, 5)
    np.testing.assert_array_equal(on_cpu.backend_.sample(40, 5), ref)
    np.testing.assert_array_equal(default.backend_.sample(40, 5), ref)
    assert len(on_cpu.sample(25)) == 25


def test_auto_and_cpu_for_a_backend_without_a_device_move(tmp_path: Path) -> None:
    _, path = _saved(tmp_path, "independent")
    assert Synthesizer.load(path, device="auto").device_ == "cpu"
    assert len(Synthesizer.load(path, device=" CPU ").sample(10)) == 10
    with pytest.raises(DeviceError, match="runs on cpu only|samples on the CPU only"):
        Synthesizer.load(path, device="cuda")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda0", "", "cpu:1", 3])
def test_bad_device_name_is_one_sentence_before_the_file_is_read(bad: object, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.tabpriv"
    with pytest.raises(DeviceError) as info:
        Synthesizer.load(missing, device=bad)  # type: ignore[arg-type]
    msg = str(info.value)
    assert msg.startswith(f"Unknown device {bad!r};") and msg.count(". ") == 0 and msg.endswith(".")
    assert "'cuda:N'" in msg
    with pytest.raises(SaveFileError):  # a good name: the file is read (and is missing)
        Synthesizer.load(missing, device="cpu")


def test_cuda_without_a_gpu_is_a_device_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present (tests/backends/test_gpu.py covers it)")
    _, path = _saved(tmp_path, "dp2-vae")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        Synthesizer.load(path, device="cuda:0")
    assert Synthesizer.load(path, device="auto").backend_.device_ == "cpu"  # type: ignore[attr-defined]
