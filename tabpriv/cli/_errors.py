"""How the CLI reports errors and warnings: one sentence on stderr, never a bare traceback.

Shared by every command module (``app``, ``evaluate``), which import it; it imports none of them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

__all__ = ["cli_errors"]


def _stderr(message: str, style: str = "red") -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, style=style)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn tabpriv errors into one sentence on stderr and exit code 1; Ctrl-C into exit 130."""
    from tabpriv.errors import TabprivError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        _show_warnings(caught)
    except typer.Exit:
        raise
    except TabprivError as e:
        _stderr(f"Error: {e}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _stderr("Interrupted; no output was written.")
        raise typer.Exit(130) from None
    except Exception as e:  # never show a bare traceback to a user
        if os.environ.get("TABPRIV_DEBUG"):
            raise
        _stderr(
            f"Internal error ({type(e).__name__}: {e}). This is a bug in tabpriv; rerun with "
            "TABPRIV_DEBUG=1 for the traceback and report it."
        )
        raise typer.Exit(2) from None


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    from tabpriv.errors import DataWarning, PrivacyWarning

    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        if text in seen:
            continue
        seen.add(text)
        if issubclass(w.category, PrivacyWarning):
            _stderr(f"Privacy warning: {text}", style="bold yellow")
        elif issubclass(w.category, DataWarning):
            _stderr(f"Warning: {text}", style="yellow")
