"""Command line: ``python -m tabpriv.audit BACKEND --trials N [--epsilon E] [--mutation NAME] [--json OUT]``.

``--mutation NAME`` runs the audit against a deliberately broken variant of the backend (see
``tabpriv.audit.targets.MUTATIONS``): exit status 2 then means the audit caught it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tabpriv.audit.audits import AUDITS, MUTATIONS, run_audit
from tabpriv.errors import TabprivError

logger = logging.getLogger("tabpriv.audit")


def main(argv: list[str] | None = None) -> int:
    """Run one audit; exit 0 when the lower bound stays below the claimed epsilon, 2 when it does not."""
    parser = argparse.ArgumentParser(prog="python -m tabpriv.audit", description=__doc__)
    parser.add_argument("backend", choices=sorted({*AUDITS, "lipschitz-vae-mia"}))
    parser.add_argument("--trials", type=int, default=2000, help="trials per dataset (D and D')")
    parser.add_argument("--epsilon", type=float, default=1.0, help="target epsilon of the mechanism")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the audit's own noise")
    parser.add_argument(
        "--mutation", default=None, help="audit a deliberately broken variant (see --list-mutations)"
    )
    parser.add_argument("--list-mutations", action="store_true", help="list the backend's mutations")
    parser.add_argument("--json", type=Path, default=None, help="append the result to this JSON list")
    args = parser.parse_args(argv)
    if args.trials < 10:
        parser.error("--trials must be at least 10")
    if args.list_mutations:
        for name, m in sorted(MUTATIONS.get(args.backend, {}).items()):
            sys.stdout.write(f"{name}: {m.description} [{m.expected}]\n")
        return 0
    if args.backend == "lipschitz-vae-mia":
        return _mia(args)
    try:
        res = run_audit(
            args.backend,
            args.trials,
            mutation=args.mutation,
            epsilon=args.epsilon,
            delta=args.delta,
            seed=args.seed,
        )
    except TabprivError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except Exception as exc:
        if args.mutation is None:
            raise
        # a mutation that breaks the fit (the loop-* self-tests): the audit errs, as it must
        sys.stderr.write(f"error: the fit raised under mutation {args.mutation!r}: {exc}\n")
        return 1
    label = res.backend if res.mutation is None else f"{res.backend} [mutation {res.mutation}]"
    line = (
        f"{label}: trials={res.trials} per dataset, claimed eps={res.claimed_epsilon:.4f} "
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
    """Membership-inference audit of the Lipschitz-VAE paper-mode release (``--trials`` = members)."""
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
    verdict = (
        "OK"
        if res["passed"] and res["testable"]
        else "NOT TESTABLE at this size: the claim exceeds the largest certifiable bound"
        if res["passed"]
        else "VIOLATION: attack lower bound above the claimed epsilon"
    )
    sys.stdout.write(
        f"lipschitz-vae (release, MIA): {res['n_members']} members vs as many non-members; claimed eps="
        f"{res['claimed_epsilon']:.4f} ({res['guarantee']}); attack eps lower bound="
        f"{res['epsilon_lb']:.4f} (largest certifiable {res['max_certifiable_epsilon']:.2f}); measured "
        f"{attacks} -> {verdict}\n"
    )
    if args.json is not None:
        from tabpriv.io import atomic_write_text

        existing = json.loads(args.json.read_text()) if args.json.exists() else []
        existing.append(res)
        atomic_write_text(args.json, json.dumps(existing, indent=2))
    return 0 if res["passed"] else 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
