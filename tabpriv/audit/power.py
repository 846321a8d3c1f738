"""Power of the end-to-end audits: every backend against its deliberately broken variants.

``python -m tabpriv.audit.power --plan NAME --json OUT [--md OUT.md]`` runs one plan (a list of
``(backend, mutation, trials, epsilon, audit kwargs)``) and appends one record per run to ``OUT``
(``flagged``: the lower bound exceeded the claim; ``error``: the fit raised, as it must for the
``loop-*`` self-tests). The tables of docs/assurance.md come from these records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["PLANS", "main", "run_plan"]

_EPS = 2.0

#: name -> [(backend, mutation or None, trials per dataset, epsilon, audit kwargs)]
PLANS: dict[str, list[tuple[str, str | None, int, float, dict[str, Any]]]] = {
    "release": [
        *[
            ("independent", m, 10_000, _EPS, {})
            for m in (None, "noise-x0.5", "noise-x0.25", "sensitivity-x2", "unnoised-step", "loop-raises")
        ],
        *[
            ("slicing", m, 5_000, _EPS, {})
            for m in (
                None,
                "noise-x0.5",
                "noise-x0.25",
                "sensitivity-x2",
                "unnoised-step",
                "block-clipping-off",
                "loop-raises",
            )
        ],
        *[
            ("slicing", m, 5_000, 1.0, {"subsample": 0.1, "n_rows": 100})
            for m in (None, "sampler-first-rows")
        ],
    ],
    "dpsgd": [
        *[
            ("dpsgd-vae", m, t, _EPS, {})
            for m, t in (
                (None, 300),
                ("noise-x0.25", 300),
                ("noise-x0.5", 200),
                ("sensitivity-x2", 200),
                ("unnoised-step", 100),
                ("loop-raises", 10),
                ("loop-skipped", 10),
            )
        ],
        *[
            ("dpsgd-vae", m, 200, _EPS, {"n_rows": 8, "batch_size": 2, "epochs": 4})
            for m in (None, "sampler-shuffle")
        ],
        *[
            ("lipschitz-vae", m, t, _EPS, {})
            for m, t in (
                (None, 200),
                ("noise-x0.25", 200),
                ("unnoised-step", 100),
                ("loop-raises", 10),
                ("loop-skipped", 10),
            )
        ],
    ],
    "extra": [
        ("independent", None, 20_000, 4.0, {}),
        ("independent", "noise-x0.5", 20_000, 4.0, {}),
    ],
    "extra2": [
        ("slicing", m, 5_000, 1.0, {"subsample": 0.1, "n_rows": 100}) for m in ("sampler-first-rows", None)
    ],
    "dp2-t100": [
        ("dp2-vae", "noise-x0.25", 500, _EPS, {"steps": 100}),
        ("dp2-vae", None, 200, _EPS, {"steps": 100}),
    ],
    "dp2": [
        ("dp2-vae", m, 1000 if m == "noise-x0.25" else 300, _EPS, {})
        for m in (
            "noise-x0.25",
            "loop-raises",
            "unnoised-step",
            "noise-x0.5",
            "sampler-shuffle",
            "sensitivity-x2",
            None,
        )
    ],
}


def run_plan(name: str, json_path: Path | None, seed: int = 0) -> list[dict[str, Any]]:
    """Run every entry of plan ``name``; append each record to ``json_path`` as soon as it is done."""
    from tabpriv.audit.audits import run_audit
    from tabpriv.audit.targets import get_mutation
    from tabpriv.io import atomic_write_text

    out: list[dict[str, Any]] = []
    for backend, mutation, trials, eps, kwargs in PLANS[name]:
        t0 = time.perf_counter()
        expected = "pass" if mutation is None else get_mutation(backend, mutation).expected  # type: ignore[union-attr]
        rec: dict[str, Any]
        try:
            res = run_audit(backend, trials, mutation=mutation, epsilon=eps, seed=seed, **kwargs)
            rec = {**res.to_dict(), "flagged": res.flagged, "error": None}
        except Exception as exc:  # a mutation that breaks the fit: the audit must error
            rec = {
                "backend": backend,
                "mutation": mutation,
                "trials": trials,
                "flagged": None,
                "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0,
            }
        rec.update(expected=expected, audit_kwargs=kwargs, plan=name, target_epsilon=eps)
        out.append(rec)
        if rec["error"]:
            verdict = f"error {rec['error']}"
        else:
            verdict = (
                f"claim {rec['claimed_epsilon']:.3f} lb {rec['epsilon_lb']:.3f} flagged {rec['flagged']}"
            )
        sys.stdout.write(f"{backend} {mutation}: {verdict} ({rec['seconds']:.0f}s)\n")
        sys.stdout.flush()
        if json_path is not None:
            existing = json.loads(json_path.read_text()) if json_path.exists() else []
            existing.append(rec)
            atomic_write_text(json_path, json.dumps(existing, indent=2, default=str))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one plan."""
    parser = argparse.ArgumentParser(prog="python -m tabpriv.audit.power", description=__doc__)
    parser.add_argument("--plan", choices=sorted(PLANS), required=True)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run_plan(args.plan, args.json, args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
