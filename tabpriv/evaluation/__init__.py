"""Evaluation of synthetic tables: marginals, utility, membership inference, SDMetrics, report.

Use :func:`evaluate`::

    report = evaluate(real_train, synthetic, schema, holdout=holdout, target="income")
    report.to_html("report.html")
    report.to_json("report.json")
"""

from tabpriv.evaluation.core import evaluate
from tabpriv.evaluation.report import METRIC_DEFINITIONS, EvaluationReport

__all__ = ["METRIC_DEFINITIONS", "EvaluationReport", "evaluate"]
