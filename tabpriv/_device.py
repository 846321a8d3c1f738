"""Compute-device and CPU-thread selection (torch is imported only when a backend needs it).

Threads (see ``docs/threads.md``): the torch backends run their fit and sample under
:func:`torch_threads`, with the count from :func:`resolve_threads`: the backend's ``threads``
parameter, else the environment variable ``TABPRIV_THREADS``, else :data:`DEFAULT_THREADS` (capped by
the CPUs this process may use). The caller's ``torch.get_num_threads()`` is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from tabpriv.errors import DeviceError, PrivacyParameterError

__all__ = ["DEFAULT_THREADS", "THREADS_ENV", "resolve_device", "resolve_threads", "torch_threads"]

#: Environment variable that sets the torch backends' CPU threads when ``threads`` is not given.
THREADS_ENV = "TABPRIV_THREADS"
#: Default intra-op threads of the torch backends (measured: ``benchmarks/results/threads.md``).
DEFAULT_THREADS = 1


def resolve_device(requested: str, supported: Sequence[str], framework: str = "torch") -> str:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a concrete device string.

    ``"auto"`` picks CUDA when the backend supports it and a GPU is present, else the CPU.
    ``framework`` is the library the backend computes with, which is asked whether it sees a GPU:
    ``"torch"`` or ``"jax"`` (so a JAX backend never imports torch: 220 MB of resident memory).

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
        return "cuda" if _cuda_available(framework) else "cpu"
    if not gpu_ok:
        raise DeviceError(
            f"This backend runs on {', '.join(supported)} only; got device={requested!r}. Use "
            "device='cpu' or 'auto'."
        )
    if not _cuda_available(framework):
        raise DeviceError(
            f"device={requested!r} was requested but no CUDA GPU is available to {framework}; use "
            "device='cpu' or 'auto'."
        )
    return req


def _cuda_available(framework: str = "torch") -> bool:
    if framework == "jax":
        try:
            import jax
        except ImportError:  # pragma: no cover - jax is a dependency
            return False
        try:
            return any(d.platform == "gpu" for d in jax.devices())
        except RuntimeError:  # pragma: no cover - no backend could start
            return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def resolve_threads(requested: int | None = None) -> int:
    """The torch intra-op thread count a backend runs with.

    Args:
        requested: The backend's ``threads`` parameter; ``None``: ``$TABPRIV_THREADS`` if set, else
            ``min(available CPUs, DEFAULT_THREADS)``. An explicit count is used as given.

    Raises:
        PrivacyParameterError: ``requested`` or ``$TABPRIV_THREADS`` is not a positive integer.

    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise PrivacyParameterError(
                f"threads must be a positive integer or None; got {requested!r}. Use e.g. threads=1."
            )
        return requested
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise PrivacyParameterError(
                f"{THREADS_ENV} must be a positive integer; got {env!r}. Unset it or use e.g. "
                f"{THREADS_ENV}=1."
            )
        return value
    return min(available_cpus(), DEFAULT_THREADS)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)``; restore the caller's count afterwards."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
