"""Compute-device selection (torch is imported only when a backend needs it)."""

from __future__ import annotations

from collections.abc import Sequence

from tabpriv.errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(requested: str, supported: Sequence[str]) -> str:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a concrete device string.

    ``"auto"`` picks CUDA when the backend supports it and a GPU is present, else the CPU.

    Raises:
        DeviceError: The backend does not run on the requested device, or no GPU is present.

    """
    req = str(requested).strip().lower()
    if req not in ("auto", "cpu") and not req.startswith("cuda"):
        raise DeviceError(f"Unknown device {requested!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    if req == "cpu":
        return "cpu"
    gpu_ok = "cuda" in supported
    if req == "auto":
        if not gpu_ok:
            return "cpu"
        return "cuda" if _cuda_available() else "cpu"
    if not gpu_ok:
        raise DeviceError(
            f"This backend runs on {', '.join(supported)} only; got device={requested!r}. Use "
            "device='cpu' or 'auto'."
        )
    if not _cuda_available():
        raise DeviceError(
            f"device={requested!r} was requested but no CUDA GPU is available to torch; use "
            "device='cpu' or 'auto'."
        )
    return req


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())
