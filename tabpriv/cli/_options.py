"""Options shared by several commands (``--sep``), defined once so their rule and help agree."""

from __future__ import annotations

import typer

__all__ = ["EVALUATE_SEP_OPTION", "SEP_OPTION", "parse_sep"]

_SEP_RULE = (
    "one character, or comma, semicolon, tab, pipe. Default: detected (comma, semicolon, tab or |) and "
    "named when it is not a comma."
)

#: ``--sep`` of ``synthesize`` and ``schema infer``.
SEP_OPTION = typer.Option(
    "--sep",
    metavar="CHAR",
    help="CSV delimiter of the input (and --holdout): " + _SEP_RULE,
    show_default=False,
)

#: ``--sep`` of ``evaluate``: every CSV table it reads (real, synthetic, hold-out).
EVALUATE_SEP_OPTION = typer.Option(
    "--sep",
    metavar="CHAR",
    help="CSV delimiter of the real table and the hold-out (tabpriv writes the synthetic table with "
    "commas; a synthetic table with another delimiter is detected): " + _SEP_RULE,
    show_default=False,
)


def parse_sep(raw: str | None) -> str | None:
    """``--sep``: one character, or a name (``comma``, ``semicolon``, ``tab``, ``pipe``) or a backslash-t."""
    from tabpriv.errors import DataValidationError
    from tabpriv.io import valid_delimiter

    if raw is None:
        return None
    named = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
    value = named.get(raw.strip().lower(), raw)
    if not valid_delimiter(value):
        raise DataValidationError(
            f"--sep must be one character (e.g. ';' or '|') or one of comma, semicolon, tab, pipe; got "
            f"{raw!r}."
        )
    return value
