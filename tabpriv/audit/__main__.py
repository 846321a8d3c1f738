"""Command line: ``python -m tabpriv.audit BACKEND --trials N [--epsilon E] [--json OUT]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tabpriv.audit.audits import AUDITS, run_audit
from tabpriv.errors import TabprivError

logger = logging.getLogger("tabpriv.audit")


def main(argv: list[str] | None = None) -> int:
    """Run one audit; exit 0 when the lower bound stays below the claimed epsilon, 2 when it does not."""
    parser = argparse.ArgumentParser(prog="python -m tabpriv.audit", description=__doc__)
    parser.add_argument("backend", choices=[*sorted(AUDITS), "lipschitz-vae"])
    parser.add_argument("--trials", type=int, default=2000, help="trials per dataset (D and D')")
    parser.add_argument("--epsilon", type=float, default=1.0, help="target epsilon of the mechanism")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the audit's own noise")
    parser.add_argument("--json", type=Path, default=None, help="append the result to this JSON list")
    args = parser.parse_args(argv)
    if args.trials < 10:
        parser.error("--trials must be at least 10")
    if args.backend == "lipschitz-vae":
        return _mia(args)
    try:
        res = run_audit(args.backend, args.trials, epsilon=args.epsilon, delta=args.delta, seed=args.seed)
    except TabprivError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    line = (
        f"{res.backend}: trials={res.trials} per dataset, claimed eps={res.claimed_epsilon:.4f} "
        f"(delta={res.delta:g}), audited eps lower bound={res.epsilon_lb:.4f} "
        f"(TPR={res.tpr:.4f}, FPR={res.fpr:.4f}), {res.seconds:.1f}s -> "
        f"{'OK' if res.passed else 'VIOLATION: lower bound above claimed epsilon'}"
    )
    sys.stdout.write(line + "\n")
    if args.json is not None:
        from tabpriv.io import atomic_write_text

        existing = json.loads(args.json.read_text()) if args.json.exists() else []
        existing.append(res.to_dict())
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(existing, indent=2))
    return 0 if res.passed else 2


def _mia(args: argparse.Namespace) -> int:
    """Membership-inference audit of the Lipschitz-VAE release (``--trials`` = attacked members)."""
    from tabpriv.audit.mia import audit_lipschitz_mia

    delta = min(args.delta, 1e-6)
    try:
        res = audit_lipschitz_mia(n_members=args.trials, epsilon=args.epsilon, delta=delta, seed=args.seed)
    except TabprivError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    attacks = ", ".join(
        f"{k}: TPR@1%FPR={v['tpr_at_1pct_fpr']:.4f} AUC={v['auc']:.3f}" for k, v in res["attacks"].items()
    )
    sys.stdout.write(
        f"lipschitz-vae (release, MIA): {res['n_members']} members vs as many non-members; claimed eps="
        f"{res['claimed_epsilon']:.4f} ({res['guarantee']}); nominal max TPR@1%FPR="
        f"{res['nominal_max_tpr_at_1pct_fpr']:.4f}; measured {attacks} -> "
        f"{'OK' if res['passed'] else 'VIOLATION: measured TPR above the nominal bound'}\n"
    )
    if args.json is not None:
        from tabpriv.io import atomic_write_text

        existing = json.loads(args.json.read_text()) if args.json.exists() else []
        existing.append(res)
        atomic_write_text(args.json, json.dumps(existing, indent=2))
    return 0 if res["passed"] else 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
