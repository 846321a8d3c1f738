"""The typer application: ``tabpriv synthesize | evaluate | schema infer | backends``.

Errors go to stderr as one readable sentence with exit code 1 (set ``TABPRIV_DEBUG=1`` for a
traceback). Every option that can be checked (paths, rows, target, hold-out, backend parameters) is
checked before the data is fitted or any file is written; no output may be an input or another output.
Outputs are written atomically: an interrupted run leaves no partial file. The synthetic table is
written block by block, so ``--rows`` is bounded by the free disk space (estimated from the schema),
not by memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from tabpriv.cli._errors import _stderr, cli_errors
from tabpriv.cli._options import SEP_OPTION, parse_sep
from tabpriv.cli._progress import _phase


def _hide_flag_types(params: list[Any]) -> list[Any]:
    """Show no value type beside a flag: typer's rich help would print ``<bool>`` by ``--clip``.

    (Typer ships its own copy of click, so the options are recognised by their ``is_flag``.)
    """
    for param in params:
        if getattr(param, "param_type_name", None) == "option" and getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class _Command(TyperCommand):
    """A command whose help shows flags as flags (no ``<bool>``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_flag_types(super().get_params(ctx))


class _Group(TyperGroup):
    """A command group whose help shows flags as flags (no ``<bool>``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_flag_types(super().get_params(ctx))


app = typer.Typer(
    name="tabpriv",
    help="Differentially private synthetic tables (census microdata first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)
schema_app = typer.Typer(help="Work with table schemas (*.schema.json).", no_args_is_help=True, cls=_Group)
app.add_typer(schema_app, name="schema")

F = TypeVar("F", bound=Callable[..., Any])


#: ``--sep``: the CSV delimiter of the input (and hold-out) files; detected when not given.
def _parse_params(items: list[str] | None) -> dict[str, Any]:
    from tabpriv.errors import PrivacyParameterError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise PrivacyParameterError(f"--param takes KEY=VALUE (e.g. --param epochs=50); got {item!r}.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def evaluation_json_path(html_path: Path) -> Path:
    """The JSON beside an HTML evaluation report: ``x.evaluation.html`` -> ``x.evaluation.json``.

    A report not named ``*.html``/``*.htm`` gets ``.json`` appended. (Earlier versions wrote
    ``x.evaluation.html.json``.)
    """
    if html_path.suffix.lower() in (".html", ".htm"):
        return html_path.with_suffix(".json")
    return Path(str(html_path) + ".json")


def _default_output(input_path: Path) -> Path:
    stem = input_path.name.split(".")[0]
    suffix = ".parquet" if input_path.suffix.lower() in (".parquet", ".pq") else ".csv"
    return Path.cwd() / f"{stem}.synthetic{suffix}"


@app.command("synthesize", cls=_Command)
def synthesize_command(
    input: Annotated[
        Path | None,
        typer.Argument(
            help="CSV or Parquet table. Default: the bundled UCI Adult sample (datasets/adult.csv) "
            "with its declared schema.",
            show_default=False,
        ),
    ] = None,
    eps: Annotated[float, typer.Option("--eps", "--epsilon", help="Privacy budget epsilon.")] = 5.1,
    delta: Annotated[float, typer.Option(help="Privacy budget delta (public; < 1/rows).")] = 1e-5,
    backend: Annotated[
        str,
        typer.Option(
            help="Backend name; `tabpriv backends` lists them. 'auto': aim on tables of <= 20 columns, "
            "mst on wider ones (the report says which and why)."
        ),
    ] = "auto",
    schema: Annotated[
        Path | None, typer.Option(help="Public schema (*.schema.json).", show_default=False)
    ] = None,
    infer_schema: Annotated[
        bool,
        typer.Option(
            "--infer-schema",
            help="Read bounds and categories off the data. NOT end-to-end DP; the report says so.",
        ),
    ] = False,
    rows: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Rows to sample (default: as many as the input); 1e6 is accepted. Written block by "
            "block: bounded by the free disk space, not by memory.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Output file (.csv or .parquet).", show_default=False),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Privacy report JSON (default: OUTPUT + .privacy.json).", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for reproducibility (marked in the report; keep it secret)."),
    ] = None,
    clip: Annotated[
        bool,
        typer.Option(
            "--clip",
            help="Clip numbers outside the declared bounds (the report says so; how many is private and "
            "never released).",
        ),
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Backend parameter KEY=VALUE (repeatable)."),
    ] = None,
    paper_mode: Annotated[
        bool,
        typer.Option(
            "--paper-mode",
            help="lipschitz-vae only: non-private training, per-record conditional guarantee "
            "(NOT end-to-end DP).",
        ),
    ] = False,
    save: Annotated[
        Path | None, typer.Option(help="Also save the fitted synthesizer here.", show_default=False)
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Evaluate the release (needs --holdout).")
    ] = False,
    holdout: Annotated[
        Path | None, typer.Option(help="Real hold-out table for --evaluate.", show_default=False)
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target column: scored by the utility metrics, and weighted up by the marginal "
            "backends (auto, aim, mst) so that a classifier trained on the release works (public; stated "
            "in the report).",
            show_default=False,
        ),
    ] = None,
    evaluation_report: Annotated[
        Path | None,
        typer.Option(help="HTML evaluation report (default: OUTPUT + .evaluation.html).", show_default=False),
    ] = None,
    no_floor: Annotated[
        bool,
        typer.Option(
            "--no-floor",
            help="With --evaluate: skip the independent floor (tabpriv's independent backend at the "
            "release's ε, evaluated beside the release; evaluation only, never released).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Where the pass over the private rows runs: 'default' (this process) or 'dask' (a Dask "
            "cluster; INPUT may then be a folder or a glob of CSV or Parquet files the workers can "
            "read, --columns/--drop make the workers read only the kept columns, and --sep applies "
            "to every CSV file, each file's delimiter being detected otherwise; noise, model fit and "
            "sampling stay in this process). See docs/engine.md.",
        ),
    ] = "default",
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="--engine dask: address of a running scheduler (tcp://host:8786). Default: a "
            "LocalCluster on 127.0.0.1 for the run.",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--columns",
            metavar="NAMES",
            help="Synthesise only these columns (comma-separated or repeated); the rest of the table and "
            "of the schema is left out, and the report lists what was left out.",
            show_default=False,
        ),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(
            "--drop",
            metavar="NAMES",
            help="Leave these columns out (comma-separated or repeated), e.g. one that does not fit "
            "the schema; the report lists them.",
            show_default=False,
        ),
    ] = None,
    sep: Annotated[str | None, SEP_OPTION] = None,
) -> None:
    """Fit a DP synthesizer to INPUT and write a synthetic table plus its privacy report."""
    with cli_errors():
        _synthesize(
            input, eps, delta, backend, schema, infer_schema, rows, output, report, device, seed,
            clip, param, paper_mode, save, evaluate, holdout, target, evaluation_report, engine, scheduler,
            _split_names(columns), _split_names(drop), parse_sep(sep), no_floor,
        )  # fmt: skip


def _split_names(items: list[str] | None) -> list[str] | None:
    """``--columns a,b --columns c`` -> ``["a", "b", "c"]`` (``None`` when the flag is not given)."""
    if items is None:
        return None
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def _parse_rows(raw: str | None) -> int | None:
    """``--rows``: a positive whole number, also written as ``1e6``."""
    from tabpriv.errors import PrivacyParameterError

    if raw is None:
        return None
    text = raw.strip()
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            f = float("nan")
        if not (f == f and abs(f) != float("inf") and f == int(f)):
            raise PrivacyParameterError(f"--rows must be a positive whole number; got {raw!r}.") from None
        value = int(f)
    if value <= 0:
        raise PrivacyParameterError(f"--rows must be a positive whole number; got {raw!r}.")
    return value


def _synthesize(
    input: Path | None,
    eps: float,
    delta: float,
    backend: str,
    schema_path: Path | None,
    infer_schema: bool,
    rows_text: str | None,
    output: Path | None,
    report_path: Path | None,
    device: str,
    seed: int | None,
    clip: bool,
    param: list[str] | None,
    paper_mode: bool,
    save: Path | None,
    evaluate: bool,
    holdout: Path | None,
    target: str | None,
    evaluation_report: Path | None,
    engine: str = "default",
    scheduler: str | None = None,
    columns: list[str] | None = None,
    drop: list[str] | None = None,
    sep: str | None = None,
    no_floor: bool = False,
) -> None:
    from rich.console import Console

    from tabpriv.backends import get_backend_class
    from tabpriv.budget import PrivacyBudget
    from tabpriv.datasets import BUNDLED_DIR, bundled_adult_path
    from tabpriv.errors import PrivacyParameterError, SchemaError
    from tabpriv.io import (
        check_disk_space,
        check_output_paths,
        check_output_writable,
        read_table,
        table_format,
        write_table_chunks,
    )
    from tabpriv.schema import Schema
    from tabpriv.synthesizer import select_columns

    console = Console(stderr=True)
    selecting = columns is not None or drop is not None
    if columns is not None and drop is not None:
        select_columns(None, None, columns, drop)  # raises: one sentence
    if schema_path is not None and infer_schema:
        raise SchemaError("Give either --schema FILE or --infer-schema, not both.")
    if input is None:
        input = bundled_adult_path()
        if schema_path is None and not infer_schema:
            schema_path = BUNDLED_DIR / "adult.schema.json"
        console.print(f"No input given: using the bundled UCI Adult sample ({input}).")
    if schema_path is None and not infer_schema:
        raise SchemaError(
            "No schema given: pass --schema FILE (public bounds and categories; `tabpriv schema "
            "infer` writes a draft to edit) or --infer-schema (not end-to-end DP)."
        )
    rows = _parse_rows(rows_text)
    from tabpriv.engine import check_engine

    if check_engine(engine) == "dask":  # the input is read on the cluster, never here
        if infer_schema:
            raise SchemaError("--engine dask needs a declared schema (--schema FILE), not --infer-schema.")
        if evaluate:
            raise PrivacyParameterError("--evaluate needs the table in memory; run it with --engine default.")
        if output is None and input is not None and any(ch in str(input) for ch in "*?["):
            raise PrivacyParameterError("--engine dask with a glob as INPUT needs --output FILE.")
    elif scheduler is not None:
        raise PrivacyParameterError("--scheduler applies to --engine dask only.")
    PrivacyBudget(eps, delta)  # fail fast on a bad epsilon or delta
    if evaluate and holdout is None:
        raise PrivacyParameterError("--evaluate needs --holdout FILE (real rows not used for training).")
    if backend != "auto":
        get_backend_class(backend)  # fail fast on an unknown name
    params = _parse_params(param)

    if paper_mode:
        if backend != "lipschitz-vae":
            raise PrivacyParameterError("--paper-mode applies to the lipschitz-vae backend only.")
        params.update(mode="paper", allow_paper_mode=True, release="reconstruction")
        from tabpriv.backends.vae.lipschitz import PAPER_MODE_WARNING

        _stderr(f"PAPER MODE: {PAPER_MODE_WARNING}.", style="bold yellow")
        if holdout is None:
            _stderr(
                "Paper mode: pass --holdout FILE so the membership-inference attacks can measure the "
                "release; without it nothing checks the nominal figure.",
                style="bold yellow",
            )
        else:
            evaluate = True  # paper mode runs the membership-inference attacks by default
    # -- everything that can be checked is checked here: nothing is fitted or written before ----------
    out_path = output if output is not None else _default_output(input)
    table_format(out_path)  # fail fast on a bad suffix
    rep_path = report_path if report_path is not None else Path(str(out_path) + ".privacy.json")
    eval_html = eval_json = None
    if evaluate:  # the rule of _run_evaluation
        eval_html = evaluation_report or Path(str(out_path) + ".evaluation.html")
        eval_json = evaluation_json_path(eval_html)
    outputs = {
        "the synthetic table (--output)": out_path,
        "the privacy report (--report)": rep_path,
        "the saved synthesizer (--save)": save,
        "the evaluation report (--evaluation-report)": eval_html,
        "the evaluation JSON (the evaluation report's name, .json)": eval_json,
    }
    check_output_paths(
        {
            "the input table": input,
            "the schema file (--schema)": schema_path,
            "the hold-out (--holdout)": holdout,
        },
        outputs,
    )
    for label, path in outputs.items():
        if path is not None:
            check_output_writable(path, label)

    from tabpriv.synthesizer import Synthesizer, check_sample_memory

    synth = Synthesizer(
        backend=backend,
        epsilon=eps,
        delta=delta,
        device=device,
        random_state=seed,
        backend_params=params,
        clip=clip,
        target=target,  # public: the marginal backends weight its marginals (stated in the report)
        engine=engine,
        scheduler=scheduler,
    )
    synth._make_backend()  # unknown or ill-typed --param: fail before reading the data
    schema_obj = Schema.load(schema_path) if schema_path is not None else None
    if engine == "dask":
        assert schema_obj is not None
        synth.schema = schema_obj
        # the workers read the --columns/--drop selection only, with --sep (or each file's detected one)
        synth.columns, synth.drop, synth.sep = columns, drop, sep
        with _phase(console, "fitting") as progress:
            synth.progress = progress
            synth.fit(str(input))  # validated on the cluster before anything is spent
        n_out = rows or synth.n_rows_in_
        check_disk_space(out_path, n_out, synth.schema_, "the synthetic table")
        with _phase(console, "sampling and writing", total=n_out) as progress:
            synth.progress = progress
            write_table_chunks(synth.sample_chunks(rows), out_path, schema=synth.schema_)
        synth.progress = None
        rep = synth.privacy_report
        rep.to_json(rep_path)
        if save is not None:
            with _phase(console, "saving the synthesizer"):
                synth.save(save)
        _summary(console, rep, input, out_path, rep_path, save, None, clip)
        return
    with _phase(console, f"reading {input.name}"):
        df = read_table(input, schema_obj, sep=sep)
    fit_df, fit_schema = df, schema_obj  # what the synthesizer gets: it records the dropped columns
    keep: list[str] | None = None
    if selecting:  # names only (public): checked before anything is inferred, fitted or written
        keep, _ = select_columns(schema_obj.names if schema_obj is not None else None, list(df.columns),
                                 columns, drop)  # fmt: skip
        synth.columns, synth.drop = columns, drop  # the synthesizer records what the report names
        df = df[keep]
        if schema_obj is not None:
            schema_obj = schema_obj.select([n for n in schema_obj.names if n in set(keep)])
    if schema_obj is None:  # --infer-schema: what fit() would infer (the release says so)
        schema_obj = fit_schema = Schema.infer(df, warn=False)
    synth.schema = fit_schema
    n_out = rows if rows is not None else len(df)
    check_disk_space(out_path, n_out, schema_obj, "the synthetic table")
    clean = None
    if evaluate:
        # The table as the synthesizer sees it (raises on data outside the schema, unless --clip).
        with _phase(console, "validating the input and the hold-out"):
            clean = schema_obj.validate(df, clip=clip)[0]
            _check_evaluation_inputs(schema_obj, clean, holdout, target, keep, sep)
        check_sample_memory(schema_obj, n_out)  # the evaluation needs the synthetic table in memory

    with _phase(console, "fitting") as progress:
        progress(0, None, "validating and encoding the rows")
        synth.progress = progress
        synth.fit(fit_df)
    if evaluate:
        with _phase(console, "sampling", total=n_out) as progress:
            synth.progress = progress
            synthetic = synth.sample(rows)
        with _phase(console, f"writing {out_path.name}"):
            write_table_chunks([synthetic], out_path, schema=synth.schema_)
    else:
        synthetic = None
        with _phase(console, "sampling and writing", total=n_out) as progress:
            synth.progress = progress  # the rows drawn so far (written block by block)
            write_table_chunks(synth.sample_chunks(rows), out_path, schema=synth.schema_)
    synth.progress = None
    rep = synth.privacy_report
    rep.to_json(rep_path)
    if save is not None:
        with _phase(console, "saving the synthesizer"):
            synth.save(save)
    eval_path = None
    headline: dict[str, float] = {}
    if evaluate:
        eval_path, results = _run_evaluation(
            console, clean, synthetic, synth, holdout, target, evaluation_report, out_path, keep, sep,
            floor=not no_floor,
        )  # fmt: skip
        headline = _headline_figures(results)
    _summary(console, rep, input, out_path, rep_path, save, eval_path, clip, headline)
    if paper_mode and eval_path is not None:
        _print_attack_figures(rep.epsilon, evaluation_json_path(eval_path))


def _only(df: Any, keep: list[str] | None) -> Any:
    """``df`` reduced to the ``--columns``/``--drop`` selection (a kept column it lacks stays missing)."""
    if keep is None:
        return df
    kept = set(keep)
    return df[[c for c in df.columns if str(c) in kept]]


def _check_evaluation_inputs(
    schema: Any,
    clean: Any,
    holdout: Path | None,
    target: str | None,
    keep: list[str] | None = None,
    sep: str | None = None,
) -> None:
    """Check --holdout and --target as the evaluation will use them, before anything is fitted."""
    from tabpriv.errors import DataValidationError
    from tabpriv.evaluation.membership import attack_sizes
    from tabpriv.evaluation.utility import MAX_TARGET_CLASSES
    from tabpriv.io import read_table

    assert holdout is not None
    if target is not None and target not in schema.names:
        raise DataValidationError(
            f"--target {target!r} is not a column of the schema; pick one of {', '.join(schema.names)}."
        )
    hold = _only(read_table(holdout, schema, sep=sep), keep)
    try:
        hold = schema.validate(hold)[0]
    except DataValidationError as e:
        raise DataValidationError(f"The hold-out {str(holdout)!r} does not fit the schema: {e}") from e
    attack_sizes(len(clean), len(hold), None)
    if target is not None:
        n_classes = clean[target].nunique(dropna=False)
        if n_classes < 2:
            raise DataValidationError(
                f"--target {target!r} is constant in the input table; a classifier cannot be scored. "
                "Pick another --target."
            )
        if schema[target].kind != "categorical" and n_classes > MAX_TARGET_CLASSES:
            raise DataValidationError(
                f"--target {target!r} is {schema[target].kind} with more than {MAX_TARGET_CLASSES} "
                "distinct values; the utility metrics need a classification target. Pick a "
                "categorical --target."
            )


def _run_evaluation(
    console: Any, df: Any, synthetic: Any, synth: Any, holdout: Path | None, target: str | None,
    evaluation_report: Path | None, out_path: Path, keep: list[str] | None = None,
    sep: str | None = None, *, floor: bool = True,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Evaluate the release as ``tabpriv evaluate`` does: floor, phases with an ETA, report, JSON."""
    from tabpriv.cli.evaluate import evaluate_with_progress
    from tabpriv.evaluation import EVALUATION_NOTICE
    from tabpriv.io import read_table

    assert holdout is not None
    hold = _only(read_table(holdout, synth.schema_, sep=sep), keep)
    ev = evaluate_with_progress(
        console, df, synthetic, synth.schema_, floor=floor,
        privacy_report=synth.privacy_report.to_dict(), holdout=hold, target=target,
    )  # fmt: skip
    path = evaluation_report or Path(str(out_path) + ".evaluation.html")
    # The evaluation's first line: it is computed from the private data (not DP, data owner only).
    _stderr(EVALUATION_NOTICE, style="bold yellow")
    ev.to_html(path)
    ev.to_json(evaluation_json_path(path))
    return path, ev.results


def _headline_figures(results: dict[str, Any]) -> dict[str, float]:
    """The final panel's evaluation figures: mean 2-way TVD, LR AUC (synthetic, real), best MIA AUC."""
    out: dict[str, float] = {}
    two = results.get("marginals", {}).get("two_way", {}).get("mean")
    if isinstance(two, int | float):
        out["tvd2"] = float(two)
    lr = results.get("utility", {}).get("models", {}).get("logistic_regression") or {}
    for who in ("synthetic", "real"):
        auc = (lr.get(who) or {}).get("roc_auc")
        if isinstance(auc, int | float):
            out[f"lr_auc_{who}"] = float(auc)
    attacks = results.get("membership", {}).get("attacks") or {}
    aucs = [float(a["auc"]) for a in attacks.values() if isinstance(a.get("auc"), int | float)]
    if aucs:
        out["mia_auc"] = max(aucs)
    return out


def _print_attack_figures(nominal_epsilon: float, eval_json: Path) -> None:
    """Print the attacks' TPR at 1% FPR next to the nominal epsilon (paper mode)."""
    import math

    attacks = json.loads(eval_json.read_text()).get("membership", {}).get("attacks", {})
    if not attacks:
        return
    best = max(float(a["tpr_at_fpr_1pct"]) for a in attacks.values())
    # An (eps, delta)-DP release bounds TPR <= e^eps * FPR + delta; at FPR = 1%:
    bound = min(1.0, math.exp(nominal_epsilon) * 0.01)
    parts = ", ".join(f"{k} {float(a['tpr_at_fpr_1pct']):.3f}" for k, a in attacks.items())
    typer.echo(
        "Membership inference (paper mode; from the private evaluation: not DP, for the data owner "
        f"only): TPR at 1% FPR = {parts} (best {best:.3f}); a genuine epsilon={nominal_epsilon:.3g} "
        f"guarantee would cap it at {bound:.3f}."
    )


def _summary(
    console: Any, rep: Any, input: Path, out: Path, rep_path: Path, save: Path | None,
    eval_path: Path | None, clip: bool = False, headline: dict[str, float] | None = None,
) -> None:  # fmt: skip
    from rich.panel import Panel
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    dp = rep.guarantee == "dp" and rep.end_to_end_dp and not rep.weak
    t.add_row("Guarantee", ("[green]" if dp else "[bold yellow]") + rep.headline)
    choice = (rep.extra or {}).get("backend_choice")
    t.add_row("Backend", rep.backend + (f" ({choice})" if choice and choice != "named by the user" else ""))
    t.add_row("Epsilon spent", f"{rep.epsilon:.4f} of {rep.budget_epsilon:g}")
    unamplified = (rep.extra or {}).get("epsilon_unamplified")
    if isinstance(unamplified, float | int) and unamplified > rep.epsilon * (1 + 1e-9):
        t.add_row(
            "Un-amplified",
            f"{unamplified:.4f}: the epsilon of the same noise without row subsampling "
            "(the guarantee above counts the amplification)",
        )
    t.add_row("Delta spent", f"{rep.delta:.3g} of {rep.budget_delta:g}")
    t.add_row("Mechanism", rep.mechanism)
    t.add_row("Rows", f"{rep.rows_in:,} in -> {rep.rows_out:,} out")
    if clip:  # the fact that clipping was asked for; the count is private and never shown
        t.add_row("Clipping", "on: numbers outside the declared bounds were clipped (count not released)")
    dropped = [str(c) for c in (rep.extra or {}).get("columns_dropped", [])]
    if (rep.extra or {}).get("columns_dropped_unlisted"):
        dropped.append("the table's columns outside the schema")
    if dropped:
        t.add_row("Columns dropped", ", ".join(dropped) + " (--columns/--drop; not synthesised)")
    if headline:
        figs = []
        if "tvd2" in headline:
            figs.append(f"2-way TVD {headline['tvd2']:.3f}")
        if "lr_auc_synthetic" in headline:
            real = headline.get("lr_auc_real")
            vs = f" (real {real:.3f})" if real is not None else ""
            figs.append(f"LR AUC {headline['lr_auc_synthetic']:.3f}{vs}")
        if "mia_auc" in headline:
            figs.append(f"MIA AUC {headline['mia_auc']:.3f} (0.5 = guessing)")
        figures = "; ".join(figs)
        t.add_row("[bold yellow]Evaluation", f"[bold yellow]PRIVATE (not DP):[/bold yellow] {figures}")
    for w in rep.warnings:
        t.add_row("[yellow]Warning", f"[yellow]{w}")
    from rich.console import Console
    from rich.markup import escape

    out_console = Console()
    out_console.print(Panel(t, title="tabpriv release", expand=False))
    # Paths on their own lines, outside the panel: a long path is never cut or broken by a border.
    files = [("Input", input), ("Output", out), ("Privacy report", rep_path), ("Saved model", save)]
    for label, path in files:
        if path is not None:
            out_console.print(f"[bold]{label}:[/bold] {escape(str(path))}", soft_wrap=True, highlight=False)
    if eval_path is not None:
        out_console.print(
            f"[bold yellow]Evaluation (PRIVATE: not differentially private, for the data owner only):"
            f"[/bold yellow] {escape(str(eval_path))}",
            soft_wrap=True,
            highlight=False,
        )


@schema_app.command("infer", cls=_Command)
def schema_infer_command(
    input: Annotated[Path, typer.Argument(help="CSV or Parquet table.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Schema file to write.")],
    max_categories: Annotated[int, typer.Option(help="Most categories per text column.")] = 1000,
    sep: Annotated[str | None, SEP_OPTION] = None,
) -> None:
    """Write a DRAFT schema read off INPUT (not private: edit it into public bounds before use)."""
    with cli_errors():
        delim = parse_sep(sep)
        from tabpriv.io import check_output_paths, check_output_writable, read_table
        from tabpriv.schema import Schema

        check_output_paths({"the input table": input}, {"the schema (--output)": output})
        check_output_writable(output, "the schema (--output)")
        df = read_table(input, sep=delim)
        s = Schema.infer(df, max_categories=max_categories, warn=False)
        s.to_json(output)
        typer.echo(
            f"Wrote a draft schema of {len(s)} columns to {output}. It was read off the data and is "
            "marked 'inferred': releases with it are not end-to-end DP until you replace the bounds "
            "and categories with public knowledge and delete the 'source' key."
        )


@app.command("backends", cls=_Command)
def backends_command() -> None:
    """List the registered backends: name, guarantee type and devices; mark what the default picks."""
    with cli_errors():
        from rich.console import Console
        from rich.table import Table

        from tabpriv.backends import available_backends, get_backend_class
        from tabpriv.backends.auto import AIM_MAX_COLUMNS

        names = available_backends()
        picks = {
            "aim": f"auto's pick on <= {AIM_MAX_COLUMNS} columns",
            "mst": f"auto's pick on > {AIM_MAX_COLUMNS} columns",
            "independent": "auto's pick when a column alone exceeds the model-size limit",
        }
        t = Table(title="tabpriv backends")
        # Names are never cut or wrapped; the summary wraps (and folds a long word) instead.
        t.add_column("name", style="bold", no_wrap=True, min_width=max(len(n) for n in [*names, "auto"]))
        t.add_column("guarantee", overflow="fold")
        t.add_column("devices", overflow="fold")
        t.add_column("summary", overflow="fold", ratio=1)
        t.add_row(
            "auto",
            "(ε, δ)-DP",
            "as chosen",
            f"[bold]The default (--backend auto).[/bold] Picks aim on tables of <= {AIM_MAX_COLUMNS} "
            "columns, mst on wider ones, independent when a column alone exceeds the model-size "
            "limit; the report says which and why.",
            end_section=True,
        )
        for name in names:
            cls = get_backend_class(name)
            label = "(ε, δ)-DP" if cls.guarantee == "dp" else "conditional / mode-dependent"
            pick = f" [italic]({picks[name]})[/italic]" if name in picks else ""
            t.add_row(name, label, ", ".join(cls.devices), cls.summary + pick)
        Console().print(t)


def _register_optional_commands() -> None:
    """Attach commands that live in their own modules (e.g. ``evaluate``) when present."""
    try:
        from tabpriv.cli.evaluate import evaluate_command
    except ImportError:
        return
    app.command("evaluate", cls=_Command)(evaluate_command)


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tabpriv")


if __name__ == "__main__":  # pragma: no cover
    main()
