"""``tabpriv evaluate REAL SYNTHETIC --schema FILE --holdout FILE --target COL -o report.html``.

The report is computed from the private data and is not differentially private: the command's first
line of output, the page and the JSON all open with
:data:`~tabpriv.evaluation.report.EVALUATION_NOTICE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["evaluate_command"]


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
) -> None:
    """Evaluate a synthetic table: marginals, utility, membership inference, SDMetrics.

    The report is computed from the private data: NOT differentially private, for the data owner only.
    """
    from tabpriv.cli._errors import cli_errors

    with cli_errors():
        _evaluate(real, synthetic, schema, output, holdout, target, json_path, privacy_report,
                  bins, seed, no_sdmetrics)  # fmt: skip


def _read(path: Path, schema: Any) -> Any:
    from tabpriv.io import read_table

    return read_table(path, schema)


def _evaluate(
    real: Path, synthetic: Path, schema_path: Path, output: Path, holdout: Path | None,
    target: str | None, json_path: Path | None, privacy_report: Path | None, bins: int,
    seed: int, no_sdmetrics: bool,
) -> None:  # fmt: skip
    from tabpriv.errors import InputFileError
    from tabpriv.evaluation import EVALUATION_NOTICE, evaluate
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
        real_df = _read(real, schema)
        syn_df = _read(synthetic, schema)
        hold_df = _read(holdout, schema) if holdout is not None else None
    priv: dict[str, Any] | None = None
    if privacy_report is not None:
        try:
            priv = json.loads(Path(privacy_report).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputFileError(f"Cannot read the privacy report {str(privacy_report)!r}: {e}.") from e
    with _phase(console, "evaluating (marginals, utility, membership inference)"):
        report = evaluate(
            real_df, syn_df, schema, holdout=hold_df, target=target, bins=bins, random_state=seed,
            privacy_report=priv, sdmetrics=not no_sdmetrics,
        )  # fmt: skip
    typer.echo(EVALUATION_NOTICE, err=True)
    try:
        report.to_html(output)
        if json_path is not None:
            report.to_json(json_path)
    except OSError as e:
        raise InputFileError(f"Cannot write the report: {e}.") from e
    typer.echo(f"Wrote {output}" + (f" and {json_path}" if json_path else ""), err=True)
