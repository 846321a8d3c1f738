"""Privacy audits: empirical lower bounds on epsilon for each backend's privatising step.

Run ``python -m tabpriv.audit BACKEND --trials N [--mutation NAME] [--json OUT]``; see
:mod:`tabpriv.audit.audits`.
"""

from __future__ import annotations

from tabpriv.audit._stats import clopper_pearson, epsilon_lower_bound
from tabpriv.audit.audits import AUDITS, AuditResult, run_audit

__all__ = ["AUDITS", "AuditResult", "clopper_pearson", "epsilon_lower_bound", "run_audit"]
