"""The CLI's per-phase progress bars (shared by the command modules; imports nothing of theirs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["_phase", "_phase_columns"]


def _phase_columns() -> list[Any]:
    """Columns of a phase's bar: a count and an ETA only when the total is known (never ``0/None``)."""
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            if task.fields.get("percent"):  # units of estimated work (the evaluation): a share
                return Text(f"{100 * task.completed / max(task.total, 1):.0f}%")
            return Text(f"{int(task.completed):,}/{int(task.total):,}")

    class Remaining(TimeRemainingColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            return Text("ETA ") + super().render(task)

    return [
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[label]}[/bold] {task.description}"),
        BarColumn(),  # pulses while the total is unknown
        Count(),
        Remaining(),
        TimeElapsedColumn(),
    ]


@contextmanager
def _phase(
    console: Any, label: str, total: int | None = None, *, percent: bool = False
) -> Iterator[Callable[[int, int | None, str], None]]:
    """A labelled progress bar for one phase of the run, cleared when the phase ends.

    Yields ``update(done, total, message)`` (the backends' :class:`~tabpriv.backends.base.FitContext`
    progress callback): a known total gives a bar with a count and an ETA, an unknown one a spinner.
    ``percent=True`` shows the count as a share (for totals in units of estimated work, such as the
    evaluation's). Shown only on a terminal.
    """
    from rich.markup import escape
    from rich.progress import Progress

    with Progress(
        *_phase_columns(), console=console, transient=True, disable=not console.is_terminal
    ) as prog:
        task = prog.add_task("", total=total, label=escape(label), percent=percent)

        def update(step: int, total: int | None = None, message: str = "") -> None:
            prog.update(task, completed=step, total=total, description=escape(message[:50]))

        yield update
