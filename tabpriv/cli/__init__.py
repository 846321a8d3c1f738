"""Command-line interface (``tabpriv``). Heavy libraries are imported inside the commands."""

from __future__ import annotations

from tabpriv.cli.app import app, main

__all__ = ["app", "main"]
