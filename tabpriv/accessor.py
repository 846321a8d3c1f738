"""The ``df.tabpriv`` DataFrame accessor, registered by ``import tabpriv`` without importing pandas or torch.

``import tabpriv`` calls :func:`install`: when pandas is already imported the accessor is registered at
once; otherwise a one-shot import hook registers it as soon as pandas finishes importing (so
``import tabpriv`` stays cheap and ``import tabpriv; import pandas`` works as well as the other order).
The synthesizer (and with it torch) is imported only when the accessor is used.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.synthesizer import Synthesizer

__all__ = ["TabprivAccessor", "install"]

_lock = threading.Lock()
_registered = False


class TabprivAccessor:
    """``df.tabpriv.synthesize(epsilon=..., schema=...)`` and ``df.tabpriv.fit(...)``."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def synthesize(self, **kwargs: Any) -> pd.DataFrame:
        """Same as :func:`tabpriv.synthesize` on this DataFrame."""
        from tabpriv.synthesizer import synthesize

        return synthesize(self._df, **kwargs)

    def fit(self, **kwargs: Any) -> Synthesizer:
        """A :class:`~tabpriv.synthesizer.Synthesizer` built with ``kwargs``, fitted on this DataFrame."""
        from tabpriv.synthesizer import Synthesizer

        return Synthesizer(**kwargs).fit(self._df)


def _register() -> None:
    """Register the accessor on pandas (once per process; pandas must be importable)."""
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
    import pandas as pd

    pd.api.extensions.register_dataframe_accessor("tabpriv")(TabprivAccessor)


class _RegisteringLoader(importlib.abc.Loader):
    """Wraps pandas' own loader: runs it, then registers the accessor."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Execute pandas, then register the accessor."""
        self._loader.exec_module(module)
        _register()


class _PandasImportHook(importlib.abc.MetaPathFinder):
    """A one-shot finder: on the first ``import pandas`` it wraps pandas' loader and removes itself."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Return pandas' spec with a registering loader; ``None`` for every other module."""
        if fullname != "pandas":
            return None
        _remove_hook()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PandasImportHook)]


def install() -> None:
    """Register ``df.tabpriv`` now if pandas is imported, else as soon as it is (idempotent)."""
    if _registered:
        return
    if "pandas" in sys.modules and hasattr(sys.modules["pandas"], "api"):
        _register()
        return
    if not any(isinstance(f, _PandasImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PandasImportHook())
