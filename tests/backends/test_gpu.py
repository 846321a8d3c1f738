"""Every torch backend fits and samples on ``cuda`` (issue 18); skipped where no CUDA GPU is present.

Run on a GPU machine with ``pytest -m gpu tests/backends/test_gpu.py``. The slicing and pgd backends
are exercised through the public API only (``Synthesizer(device="cuda")``, save, load); the VAE
backends also show that their trained model lives on the GPU and that a loaded model, moved with
``to("cuda")`` or loaded with ``Synthesizer.load(path, device="cuda")``, samples on the GPU exactly
as the fitted one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tabpriv import Synthesizer  # noqa: E402

from .._helpers import quick_synthesizer  # noqa: E402
from ..conftest import make_small_df  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
]

TORCH_BACKENDS = ["lipschitz-vae", "dpsgd-vae", "dp2-vae", "slicing", "slicing-wasserstein", "pgd"]
VARIANTS = [
    ("lipschitz-vae", {"release": "reconstruction"}),
    ("lipschitz-vae", {"enforcement": "penalty"}),
    ("dpsgd-vae", {"condition_on": "color"}),
    ("dp2-vae", {"condition_on": "color"}),
    ("dpsgd-vae", {"grad_sample_mode": "hooks"}),
]


@pytest.mark.parametrize(
    ("backend", "params"),
    [(b, {}) for b in TORCH_BACKENDS] + VARIANTS,
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()) or "default",
)
def test_fits_and_samples_on_cuda(backend: str, params: dict[str, object], tmp_path: Path) -> None:
    synth = quick_synthesizer(backend, device="cuda", **params).fit(make_small_df(300))
    assert synth.device_.startswith("cuda")
    assert synth.privacy_report.epsilon <= 3.0
    out = synth.sample(200)
    assert len(out) == 200 and list(out.columns) == list(make_small_df(5).columns)
    path = tmp_path / "s.tabpriv"
    synth.save(path)
    loaded = Synthesizer.load(path)
    assert len(loaded.sample(50)) == 50


@pytest.mark.parametrize("backend", ["lipschitz-vae", "dpsgd-vae", "dp2-vae"])
def test_vae_model_is_device_resident_and_loaded_model_samples_on_cuda(backend: str, tmp_path: Path) -> None:
    synth = quick_synthesizer(backend, device="cuda").fit(make_small_df(300))
    b = synth.backend_
    assert str(b.device_).startswith("cuda")  # type: ignore[attr-defined]
    if backend == "lipschitz-vae":
        assert all(p.is_cuda for p in b.model_.parameters())  # type: ignore[attr-defined]
    ref = b.sample(64, 7)
    path = tmp_path / "s.tabpriv"
    synth.save(path)
    loaded = Synthesizer.load(path).backend_
    assert loaded.device_ == "cpu"  # type: ignore[attr-defined]
    loaded.to("cuda")  # type: ignore[attr-defined]
    assert str(loaded.device_).startswith("cuda")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.sample(64, 7), ref)  # same weights, same device, same draws
    loaded.to("cpu")  # type: ignore[attr-defined]
    assert loaded.sample(64, 7).shape == ref.shape


@pytest.mark.parametrize("backend", ["lipschitz-vae", "dpsgd-vae", "dp2-vae", "slicing"])
def test_load_with_device_cuda_samples_on_the_gpu(backend: str, tmp_path: Path) -> None:
    """``Synthesizer.load(path, device="cuda")`` moves the model; a VAE then samples as when fitted."""
    synth = quick_synthesizer(backend, device="cuda").fit(make_small_df(300))
    ref = synth.backend_.sample(64, 7)
    path = tmp_path / "s.tabpriv"
    synth.save(path)
    loaded = Synthesizer.load(path, device="cuda")
    assert loaded.device_.startswith("cuda")
    assert str(loaded.backend_.device_).startswith("cuda")  # type: ignore[attr-defined]
    if backend != "slicing":  # the VAEs, as in the test above
        np.testing.assert_array_equal(loaded.backend_.sample(64, 7), ref)
    assert len(loaded.sample(50)) == 50
    assert Synthesizer.load(path).device_ == "cpu"  # the default is unchanged


def test_cuda_and_cpu_fits_agree_in_distribution() -> None:
    """Same seed on both devices: not the same draws, but the same table to sampling noise."""
    df = make_small_df(600)
    shares = []
    for device in ("cpu", "cuda"):
        out = quick_synthesizer("dpsgd-vae", device=device, epochs=3).fit(df).sample(4000)
        shares.append(out["color"].astype(str).value_counts(normalize=True))
    diff = shares[0].sub(shares[1], fill_value=0.0).abs().sum() / 2
    assert diff < 0.15
