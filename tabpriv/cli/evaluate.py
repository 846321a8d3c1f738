"""``tabpriv evaluate REAL SYNTHETIC --schema FILE --holdout FILE --target COL -o report.html``.

The report is computed from the private data and is not differentially private: the command's first
line of output, the page and the JSON all open with
:data:`~tabpriv.evaluation.report.EVALUATION_NOTICE`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tabpriv.cli._options import EVALUATE_SEP_OPTION, parse_sep

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.evaluation import EvaluationReport
    from tabpriv.schema import Schema

__all__ = [
    "DEFAULT_FLOOR_EPSILON",
    "EVALUATION_PHASE_LABELS",
    "evaluate_command",
    "evaluate_with_progress",
    "independent_floor",
]

logger = logging.getLogger(__name__)

#: The floor's ε when no privacy report is given: tabpriv's default ε (``Synthesizer(epsilon=5.1)``).
DEFAULT_FLOOR_EPSILON = 5.1

#: What the evaluation bar says during each phase of :func:`tabpriv.evaluation.evaluate`.
EVALUATION_PHASE_LABELS = {
    "discretize": "discretising the tables",
    "marginals": "marginals (1-, 2-, 3-way TVD)",
    "utility": "utility models (TSTR)",
    "membership": "membership-inference attacks",
    "sdmetrics": "SDMetrics",
    "floor": "independent floor: same figures",
    "done": "done",
}


def independent_floor(
    real: pd.DataFrame,
    schema: Schema,
    n_rows: int,
    *,
    privacy_report: Any = None,
    seed: int = 0,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The independent floor: tabpriv's ``independent`` backend fitted to ``real`` at the release's ε.

    An evaluation artefact for the data owner, not a release: its budget is not part of the release's
    (it has its own ledger) and it is never written anywhere but into the (private) evaluation. Pass
    the result to :func:`tabpriv.evaluation.evaluate` as ``floor=table, floor_info=info``.

    Args:
        real: The real training table (the one the release was fitted to).
        schema: Its schema.
        n_rows: Rows to sample (the synthetic table's row count).
        privacy_report: The release's :class:`~tabpriv.budget.PrivacyReport` or its dict: ε and δ are
            taken from it (``epsilon``, ``delta``: what the release spent; nominal for a conditional
            guarantee). Without one: ε = :data:`DEFAULT_FLOOR_EPSILON`, δ =
            :data:`tabpriv.budget.DEFAULT_DELTA`.
        seed: Seed of the floor's noise and sampling (the evaluation's ``random_state``).
        progress: The synthesizer's ``progress(step, total, message)`` callback.

    Returns:
        ``(table, info)``: the sampled floor and ``{"backend", "epsilon", "delta", "epsilon_source",
        "seed", "n_rows"}``.

    """
    import warnings

    from tabpriv.budget import DEFAULT_DELTA
    from tabpriv.errors import PrivacyWarning
    from tabpriv.synthesizer import Synthesizer

    p: Mapping[str, Any] | None
    if privacy_report is None or isinstance(privacy_report, Mapping):
        p = privacy_report
    else:
        p = privacy_report.to_dict()
    eps = p.get("epsilon") if p else None
    delta = p.get("delta") if p else None
    given = isinstance(eps, int | float) and not isinstance(eps, bool) and eps > 0
    epsilon = float(eps) if given else DEFAULT_FLOOR_EPSILON  # type: ignore[arg-type]
    ok_delta = isinstance(delta, int | float) and not isinstance(delta, bool) and 0 < delta < 1
    d = float(delta) if ok_delta else DEFAULT_DELTA  # type: ignore[arg-type]
    synth = Synthesizer(
        backend="independent", epsilon=epsilon, delta=d, schema=schema, random_state=seed, progress=progress
    )
    with warnings.catch_warnings():
        # The floor is never released: the seeded-run and weak-epsilon warnings are about releases.
        warnings.simplefilter("ignore", PrivacyWarning)
        synth.fit(real)
        table = synth.sample(n_rows)
    logger.info("independent floor: epsilon=%.4g delta=%.3g, %d rows (evaluation only)", epsilon, d, n_rows)
    info = {
        "backend": "independent",
        "epsilon": epsilon,
        "delta": d,
        "epsilon_source": "the release's privacy report"
        if given
        else f"no privacy report given: tabpriv's default ε = {DEFAULT_FLOOR_EPSILON:g}",
        "seed": seed,
        "n_rows": n_rows,
    }
    return table, info


def evaluate_with_progress(
    console: Any,
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    floor: bool,
    privacy_report: Any,
    seed: int = 0,
    **kwargs: Any,
) -> EvaluationReport:
    """The CLI's evaluation: the independent floor, then :func:`~tabpriv.evaluation.evaluate`.

    Each phase runs under a labelled bar with an ETA; ``floor=False`` leaves the floor out. Shared by
    ``tabpriv evaluate`` and ``tabpriv synthesize --evaluate``. ``kwargs`` go to
    :func:`~tabpriv.evaluation.evaluate` (``holdout``, ``target``, ``bins``, ``sdmetrics``).
    """
    from tabpriv.cli._progress import _phase
    from tabpriv.evaluation import evaluate

    floor_df, floor_info = None, None
    if floor:
        with _phase(console, "independent floor (evaluation only)") as update:
            floor_df, floor_info = independent_floor(
                real, schema, len(synthetic), privacy_report=privacy_report, seed=seed, progress=update
            )
    with _phase(console, "evaluating", percent=True) as update:

        def progress(phase: str, done: int, total: int) -> None:
            update(done, total, EVALUATION_PHASE_LABELS.get(phase, phase))

        return evaluate(
            real, synthetic, schema, random_state=seed, privacy_report=privacy_report,
            floor=floor_df, floor_info=floor_info, progress=progress, **kwargs,
        )  # fmt: skip


def evaluate_command(
    real: Annotated[Path, typer.Argument(help="Real training table (CSV or Parquet).")],
    synthetic: Annotated[Path, typer.Argument(help="Synthetic table (CSV or Parquet).")],
    schema: Annotated[Path, typer.Option("--schema", help="Schema file (*.schema.json) of both tables.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML report.")] = Path(
        "evaluation.html"
    ),
    holdout: Annotated[
        Path | None,
        typer.Option(help="Real rows not used for training (utility test set, non-members)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column of the utility models.")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write every number as JSON here.")
    ] = None,
    privacy_report: Annotated[
        Path | None,
        typer.Option(
            "--privacy-report", help="Privacy report JSON of the release, shown as the release's guarantee."
        ),
    ] = None,
    bins: Annotated[int, typer.Option(help="Equal-width bins per numeric column.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of subsamples and models.")] = 0,
    no_sdmetrics: Annotated[bool, typer.Option("--no-sdmetrics", help="Skip the SDMetrics figures.")] = False,
    no_floor: Annotated[
        bool,
        typer.Option(
            "--no-floor",
            help="Skip the independent floor (tabpriv's independent backend at the release's ε, "
            "evaluated beside the release; evaluation only, never released).",
        ),
    ] = False,
    sep: Annotated[str | None, EVALUATE_SEP_OPTION] = None,
) -> None:
    """Evaluate a synthetic table: marginals, utility, membership inference, SDMetrics.

    The report is computed from the private data: NOT differentially private, for the data owner only.
    """
    from tabpriv.cli._errors import cli_errors

    with cli_errors():
        _evaluate(real, synthetic, schema, output, holdout, target, json_path, privacy_report,
                  bins, seed, no_sdmetrics, no_floor, parse_sep(sep))  # fmt: skip


def _read(path: Path, schema: Any, sep: str | None = None) -> Any:
    from tabpriv.io import read_table

    return read_table(path, schema, sep=sep)


def _evaluate(
    real: Path, synthetic: Path, schema_path: Path, output: Path, holdout: Path | None,
    target: str | None, json_path: Path | None, privacy_report: Path | None, bins: int,
    seed: int, no_sdmetrics: bool, no_floor: bool = False, sep: str | None = None,
) -> None:  # fmt: skip
    from tabpriv.errors import InputFileError
    from tabpriv.evaluation import EVALUATION_NOTICE
    from tabpriv.io import check_output_paths, check_output_writable
    from tabpriv.schema import Schema

    outputs = {"the HTML report (--output)": output, "the JSON (--json)": json_path}
    check_output_paths(
        {
            "the real table": real,
            "the synthetic table": synthetic,
            "the schema file (--schema)": schema_path,
            "the hold-out (--holdout)": holdout,
            "the privacy report (--privacy-report)": privacy_report,
        },
        outputs,
    )
    for label, out in outputs.items():
        if out is not None:
            check_output_writable(out, label)
    from rich.console import Console

    from tabpriv.cli._progress import _phase

    console = Console(stderr=True)
    schema = Schema.load(schema_path)
    with _phase(console, "reading the tables"):
        real_df = _read(real, schema, sep)
        syn_df = _read(synthetic, schema)  # tabpriv writes commas; another delimiter is detected
        hold_df = _read(holdout, schema, sep) if holdout is not None else None
    priv: dict[str, Any] | None = None
    if privacy_report is not None:
        try:
            priv = json.loads(Path(privacy_report).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputFileError(f"Cannot read the privacy report {str(privacy_report)!r}: {e}.") from e
    report = evaluate_with_progress(
        console, real_df, syn_df, schema, floor=not no_floor, privacy_report=priv, seed=seed,
        holdout=hold_df, target=target, bins=bins, sdmetrics=not no_sdmetrics,
    )  # fmt: skip
    typer.echo(EVALUATION_NOTICE, err=True)
    try:
        report.to_html(output)
        if json_path is not None:
            report.to_json(json_path)
    except OSError as e:
        raise InputFileError(f"Cannot write the report: {e}.") from e
    typer.echo(f"Wrote {output}" + (f" and {json_path}" if json_path else ""), err=True)
