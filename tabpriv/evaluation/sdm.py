"""SDMetrics figures, computed by the installed ``sdmetrics`` package itself.

The QualityReport gives the overall score and its two properties (Column Shapes, Column Pair Trends).
Its details hold, per column, KSComplement (numerical) or TVComplement (categorical) and, per pair,
CorrelationSimilarity (numerical pairs) or ContingencySimilarity (other pairs): the four marginal
figures are their means, exactly as SDMetrics computes them. BinaryLogisticRegression is
``sdmetrics.single_table.BinaryLogisticRegression.compute`` (F1; train on synthetic, test on real).
KSComplement and TVComplement are the means of the QualityReport's Column Shapes details;
CorrelationSimilarity (Pearson) is the mean of ``CorrelationSimilarity.compute`` over numerical
column pairs, ContingencySimilarity the mean of ``ContingencySimilarity.compute`` over categorical
column pairs (the QualityReport of sdmetrics 0.32 leaves correlation scores empty below its
association threshold, so the pair figures are computed directly).

Any failure inside sdmetrics is caught and reported as an ``error`` entry, so the rest of the
evaluation never depends on it.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_MAX_ROWS", "sdmetrics_scores"]

logger = logging.getLogger(__name__)

#: Tables longer than this are subsampled (seeded) before sdmetrics sees them.
DEFAULT_MAX_ROWS = 50_000


def _metadata(schema: Schema) -> dict[str, Any]:
    return {
        "columns": {
            c.name: {"sdtype": "categorical" if c.kind == "categorical" else "numerical"}
            for c in schema.columns
        }
    }


def _prepare(df: pd.DataFrame, schema: Schema, max_rows: int, seed: int) -> pd.DataFrame:
    import pandas as pd

    if len(df) > max_rows:
        df = df.sample(n=max_rows, random_state=seed)
    out = pd.DataFrame(index=df.index)
    for c in schema.columns:
        s = df[c.name]
        if c.kind == "categorical":
            out[c.name] = s.astype(object).where(s.notna(), np.nan)
        else:
            out[c.name] = pd.to_numeric(s, errors="coerce").astype(float)
    return out.reset_index(drop=True)


def _pair_metrics(
    r: pd.DataFrame, s: pd.DataFrame, schema: Schema, details: pd.DataFrame | None
) -> dict[str, Any]:
    """Mean CorrelationSimilarity (numeric pairs) and ContingencySimilarity (categorical pairs).

    ContingencySimilarity of categorical pairs is read from the QualityReport's details when they
    hold it (the report computes it with ``ContingencySimilarity.compute``), else computed.
    """
    import itertools

    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity

    out: dict[str, Any] = {}
    num = [c.name for c in schema.columns if c.kind != "categorical"]
    cat = [c.name for c in schema.columns if c.kind == "categorical"]
    try:
        vals = [
            float(CorrelationSimilarity.compute(r[[a, b]], s[[a, b]], coefficient="Pearson"))
            for a, b in itertools.combinations(num, 2)
        ]
        vals = [v for v in vals if np.isfinite(v)]
        out["CorrelationSimilarity"] = float(np.mean(vals)) if vals else None
        out["CorrelationSimilarity_pairs"] = len(vals)
    except Exception as e:
        out["CorrelationSimilarity"] = None
        out["CorrelationSimilarity_error"] = f"{type(e).__name__}: {e}"
    try:
        pairs = list(itertools.combinations(cat, 2))
        cached: dict[tuple[str, str], float] = {}
        if details is not None:
            for a, b, metric, score in zip(
                details["Column 1"],
                details["Column 2"],
                details["Metric"],
                details["Score"],
                strict=True,
            ):
                if metric == "ContingencySimilarity" and np.isfinite(score):
                    cached[(a, b)] = cached[(b, a)] = float(score)
        vals = [
            cached[(a, b)] if (a, b) in cached else float(ContingencySimilarity.compute(r[[a, b]], s[[a, b]]))
            for a, b in pairs
        ]
        vals = [v for v in vals if np.isfinite(v)]
        out["ContingencySimilarity"] = float(np.mean(vals)) if vals else None
        out["ContingencySimilarity_pairs"] = len(vals)
    except Exception as e:
        out["ContingencySimilarity"] = None
        out["ContingencySimilarity_error"] = f"{type(e).__name__}: {e}"
    return out


def _seen_categories_only(
    test: pd.DataFrame, train: pd.DataFrame, schema: Schema
) -> tuple[pd.DataFrame, int]:
    keep = np.ones(len(test), dtype=bool)
    for c in schema.columns:
        if c.kind == "categorical":
            seen = set(train[c.name].dropna().tolist())
            keep &= (test[c.name].isna() | test[c.name].isin(seen)).to_numpy()
    return test[keep].reset_index(drop=True), int((~keep).sum())


def sdmetrics_scores(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    test: pd.DataFrame | None = None,
    target: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    random_state: int = 0,
) -> dict[str, Any]:
    """Compute the SDMetrics QualityReport and the five figures of the paper table.

    Args:
        real: Real training table (what the synthetic table imitates).
        synthetic: Synthetic table.
        schema: Schema (gives the sdtypes).
        test: Real table the BinaryLogisticRegression model is tested on (the hold-out).
        target: Binary target column for BinaryLogisticRegression.
        max_rows: Tables longer than this are subsampled (seeded).
        random_state: Seed of the subsample.

    Returns:
        A JSON-ready dict; ``error`` entries where sdmetrics failed.

    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"max_rows": max_rows}
    pair_details: pd.DataFrame | None = None
    try:
        import sdmetrics
        from sdmetrics.reports import QualityReport

        out["sdmetrics_version"] = sdmetrics.__version__
    except Exception as e:  # pragma: no cover - depends on the environment
        return {"error": f"sdmetrics is not importable: {e}"}
    r = _prepare(real, schema, max_rows, random_state)
    s = _prepare(synthetic, schema, max_rows, random_state + 1)
    out["subsampled"] = len(real) > max_rows or len(synthetic) > max_rows
    md = _metadata(schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            qr = QualityReport()
            qr.generate({"table": r}, {"table": s}, {"tables": {"table": md}}, verbose=False)
            props = qr.get_properties()
            out["quality_score"] = float(qr.get_score())
            out["properties"] = {
                str(p): float(v) for p, v in zip(props["Property"], props["Score"], strict=True)
            }
            pair_details = qr.get_details("Column Pair Trends")
            shapes = qr.get_details("Column Shapes")
            for metric in ("KSComplement", "TVComplement"):
                vals = shapes.loc[shapes["Metric"] == metric, "Score"].astype(float).dropna()
                out[metric] = float(vals.mean()) if len(vals) else None
        except Exception as e:
            logger.warning("sdmetrics QualityReport failed: %s", e)
            out["error"] = f"QualityReport failed: {type(e).__name__}: {e}"
        out.update(_pair_metrics(r, s, schema, pair_details))
        out["BinaryLogisticRegression"] = None
        if target is not None and test is not None:
            try:
                from sdmetrics.single_table import BinaryLogisticRegression

                t = _prepare(test, schema, max_rows, random_state + 2)
                if t[target].nunique(dropna=True) == 2 and s[target].nunique(dropna=True) == 2:
                    t_use, n_dropped = _seen_categories_only(t, s, schema)
                    if n_dropped:
                        out["BinaryLogisticRegression_note"] = (
                            f"{n_dropped} test rows hold a category absent from the synthetic "
                            "table, which sdmetrics' encoder cannot transform; they were left out"
                        )
                    out["BinaryLogisticRegression"] = float(
                        BinaryLogisticRegression.compute(
                            test_data=t_use, train_data=s, metadata=md, target=target
                        )
                    )
                else:
                    out["BinaryLogisticRegression_note"] = (
                        "needs a binary target with both classes in the synthetic and test tables"
                    )
            except Exception as e:
                logger.warning("sdmetrics BinaryLogisticRegression failed: %s", e)
                out["BinaryLogisticRegression_error"] = f"{type(e).__name__}: {e}"
    out["seconds"] = time.perf_counter() - t0
    return out
