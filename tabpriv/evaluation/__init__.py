"""Evaluation of synthetic tables: marginals, utility, membership inference, SDMetrics, report.

Use :func:`evaluate`::

    report = evaluate(real_train, synthetic, schema, holdout=holdout, target="income")
    report.to_html("report.html")
    report.to_json("report.json")

The report is computed from the private data and is NOT differentially private: every artefact opens
with :data:`EVALUATION_NOTICE` and is for the data owner only. A privacy report passed in is shown as
the release's guarantee (``release_guarantee`` in the JSON), never as the report's.
"""

from tabpriv.evaluation.core import evaluate
from tabpriv.evaluation.report import (
    EVALUATION_NOTICE,
    METRIC_DEFINITIONS,
    RELEASE_GUARANTEE_NOTE,
    EvaluationReport,
)

__all__ = [
    "EVALUATION_NOTICE",
    "METRIC_DEFINITIONS",
    "RELEASE_GUARANTEE_NOTE",
    "EvaluationReport",
    "evaluate",
]
