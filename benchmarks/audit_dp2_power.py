"""Why the slow dp2-vae power audit missed the 4x under-noised run, and which setting flags it (issue 18).

Three measurements, each one process, torch threads 1:

* ``scores``: run ``tabpriv.audit.run_audit("dp2-vae", TRIALS, mutation=..., epsilon=2, seed=0, **kw)``
  and save its candidate-statistic matrices (the ``finish`` arguments) with the result. Run from a
  worktree of an older commit (``PYTHONPATH=<worktree>``), it shows whether the audit statistic
  changed between commits (same seeds: the matrices must be equal if nothing changed).
* ``collect``: the same audit, with the raw per-step quantities of every trial recorded as well
  (``s_t``, the offset ``<g_x, d_t>``, ``|d_t|``, the output-bias projection), so that candidate
  statistics and trial counts can be compared offline on the same fits.
* ``ceiling``: the largest bound any distinguisher can certify at ``n`` counted trials per dataset when
  only the fraction ``1 - (1 - 1/K)^T`` of runs uses the canary's subset (no fit; Clopper-Pearson).

Usage (from the repository root)::

    nice -n 10 .venv/bin/python -m benchmarks.audit_dp2_power scores --trials 300 --out /tmp/x.npz
    nice -n 10 .venv/bin/python -m benchmarks.audit_dp2_power collect --trials 400 --steps 100 --out F.npz
    .venv/bin/python -m benchmarks.audit_dp2_power ceiling
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run(args: argparse.Namespace, raw: bool) -> None:
    import torch

    torch.set_num_threads(1)
    import tabpriv
    from tabpriv.audit import run_audit, targets

    captured: dict[str, Any] = {}
    real_finish = targets.finish
    per_step: dict[str, list[np.ndarray]] = {"s": [], "offset": [], "dnorm": [], "bias": []}

    def finish(s_d: np.ndarray, s_p: np.ndarray, **kw: Any) -> Any:
        captured["s_d"], captured["s_p"] = s_d, s_p
        return real_finish(s_d, s_p, **kw)

    real_stats = targets._step_statistics

    def stats(rec: Any, grad_of: Any, rows: Any, clip: float, expected_steps: int) -> np.ndarray:
        out = real_stats(rec, grad_of, rows, clip, expected_steps)
        x, xp = rows
        v = targets._output_bias_direction(x, xp, rec)
        s, off, dn, bias = (np.empty(rec.steps) for _ in range(4))
        for t in range(rec.steps):
            gx = targets._clipped(grad_of(t, x), clip)
            d = targets._clipped(grad_of(t, xp), clip) - gx
            g = targets._flat(rec.grads[t])
            s[t], off[t], dn[t] = float(g @ d), float(gx @ d), float(d.norm())
            bias[t] = float(rec.grads[t][-1].reshape(-1) @ v)
        for k, a in zip(("s", "offset", "dnorm", "bias"), (s, off, dn, bias), strict=True):
            per_step[k].append(a)
        return out

    targets.finish = finish  # type: ignore[assignment]
    if raw:
        targets._step_statistics = stats
    kw = {"steps": args.steps} if args.steps is not None else {}
    load0, c0, t0 = os.getloadavg()[0], _cpu(), time.perf_counter()
    res = run_audit("dp2-vae", args.trials, mutation=args.mutation, epsilon=2.0, seed=args.seed, **kw)
    c1, t1 = _cpu(), time.perf_counter()
    info = {
        **res.to_dict(),
        "flagged": res.flagged,
        "cpu_s": round(c1 - c0, 1),
        "wall_s": round(t1 - t0, 1),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "tabpriv": str(Path(tabpriv.__file__).resolve().parent),
    }
    arrays: dict[str, np.ndarray] = {"s_d": captured["s_d"], "s_p": captured["s_p"]}
    if raw:
        n = args.trials
        for k, v in per_step.items():
            a = np.stack(v)
            arrays[f"{k}_d"], arrays[f"{k}_p"] = a[:n], a[n:]
    arrays["info"] = np.asarray(json.dumps(info, default=str))
    saved: dict[str, Any] = dict(arrays)
    np.savez(args.out, **saved)
    keys = ("claimed_epsilon", "epsilon_lb", "flagged", "tpr", "fpr", "cpu_s", "wall_s", "load1_before")
    print(json.dumps({k: info.get(k) for k in keys} | {"statistic": info["parameters"].get("statistic")}))


def ceiling(ks: tuple[int, ...] = (100,), steps: tuple[int, ...] = (20, 50, 100)) -> None:
    """Best certifiable bound with a perfect detector of the runs that use the canary's subset."""
    from tabpriv.audit._stats import epsilon_lower_bound

    for k in ks:
        for t in steps:
            p = 1.0 - (1.0 - 1.0 / k) ** t
            row = []
            for n in (150, 250, 400, 500):
                tp = round(p * n)  # the expected count of runs that use the canary's subset
                row.append(f"n={n}: {epsilon_lower_bound(tp, n, 0, n, 1e-5):.2f}")
            print(f"K={k} T={t} p_used={p:.3f}  " + "  ".join(row))


def main() -> None:
    """Run one measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("what", choices=("scores", "collect", "ceiling"))
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--mutation", default="noise-x0.25")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dp2_audit.npz"))
    args = ap.parse_args()
    if args.mutation == "none":
        args.mutation = None
    if args.what == "ceiling":
        ceiling()
    else:
        _run(args, raw=args.what == "collect")


if __name__ == "__main__":
    main()
