"""CPU-seconds and wall time of the torch backends on Adult at 1 and 2 torch threads (issue 18).

Usage::

    nice .venv/bin/python benchmarks/bench_threads.py                      # the published set
    nice .venv/bin/python benchmarks/bench_threads.py --backends lipschitz-vae --threads 1 2

Each configuration (backend, threads, ``OMP_WAIT_POLICY``) runs in its own subprocess, so that
``OMP_WAIT_POLICY`` is in the environment before torch (and its OpenMP runtime) loads. The child fits
and samples Adult's training split (ε = 5.1, δ = 1e-5, seed 0) through the public API with
``backend_params={"threads": N, ...}`` (the library applies ``torch.set_num_threads(N)`` around fit and
sample); it reports wall seconds (``time.perf_counter``), CPU seconds of the whole process (user + system
of every thread, ``resource.getrusage``), the 1-minute load average before and after, and a SHA-256 of
the sampled table (to check that the output does not depend on the thread count). Results:
``benchmarks/results/threads.{json,md}``. The machine is shared: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

#: Per-backend parameters of the timed run (lipschitz-vae: the issue's 2-epoch profile).
PARAMS: dict[str, dict[str, Any]] = {
    "lipschitz-vae": {"epochs": 2},
    "slicing": {},
    "dpsgd-vae": {"epochs": 2},
    "dp2-vae": {"steps": 2000},
}


def child(backend: str, threads: int, params: dict[str, Any]) -> dict[str, Any]:
    """Fit + sample once in this process; return the figures."""
    import resource

    import torch

    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    train = load_adult("train")
    load0 = os.getloadavg()[0]
    c0, t0 = cpu(), time.perf_counter()
    syn = Synthesizer(backend, epsilon=5.1, delta=1e-5, schema=adult_schema(), random_state=0,
                      device="cpu", backend_params={**params, "threads": threads})  # fmt: skip
    syn.fit(train)
    c1, t1 = cpu(), time.perf_counter()
    out = syn.sample(len(train))
    c2, t2 = cpu(), time.perf_counter()
    digest = hashlib.sha256(out.to_csv(index=False).encode()).hexdigest()
    return {
        "backend": backend,
        "threads": threads,
        "params": params,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_threads_after": torch.get_num_threads(),
        "fit_wall_s": round(t1 - t0, 2),
        "fit_cpu_s": round(c1 - c0, 2),
        "sample_wall_s": round(t2 - t1, 2),
        "sample_cpu_s": round(c2 - c1, 2),
        "total_wall_s": round(t2 - t0, 2),
        "total_cpu_s": round(c2 - c0, 2),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "table_sha256": digest,
        "table_head": out.head(3).astype(str).to_dict("records"),
    }


def write(records: list[dict[str, Any]]) -> None:
    """Write ``threads.json`` and ``threads.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    (RESULTS / "threads.json").write_text(json.dumps({"machine": meta, "runs": records}, indent=2) + "\n")
    lines = [
        "# Torch threads: CPU-seconds and wall on Adult (fit + sample, ε = 5.1, seed 0)",
        "",
        f"Machine: {meta['cpus']} CPUs (shared), {meta['platform']}. Written by "
        "`benchmarks/bench_threads.py`; each row is one subprocess; load = 1-minute load average "
        "before/after the run. `same table` compares the sampled table's SHA-256 with the 1-thread run "
        "of the same backend.",
        "",
        "| backend | params | threads | OMP_WAIT_POLICY | fit wall s | fit CPU-s | sample wall s | "
        "sample CPU-s | total CPU-s | load before/after | same table as 1 thread |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ref = {r["backend"]: r["table_sha256"] for r in records if r["threads"] == 1 and not r["omp_wait_policy"]}
    for r in records:
        same = "-" if r["backend"] not in ref else ("yes" if r["table_sha256"] == ref[r["backend"]] else "NO")
        lines.append(
            f"| {r['backend']} | `{json.dumps(r['params'])}` | {r['threads']} | "
            f"{r['omp_wait_policy'] or '-'} | "
            f"{r['fit_wall_s']} | {r['fit_cpu_s']} | {r['sample_wall_s']} | {r['sample_cpu_s']} | "
            f"{r['total_cpu_s']} | {r['load1_before']}/{r['load1_after']} | {same} |"
        )
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run every configuration in a subprocess and write the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backends", nargs="+", default=["lipschitz-vae", "slicing"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--passive", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the largest thread count with OMP_WAIT_POLICY=PASSIVE")  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["backend"], spec["threads"], spec["params"])))
        return
    records: list[dict[str, Any]] = []
    for backend in args.backends:
        configs = [(t, None) for t in args.threads]
        if args.passive:
            configs.append((max(args.threads), "PASSIVE"))
        for threads, policy in configs:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "TABPRIV_THREADS")}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            spec = json.dumps({"backend": backend, "threads": threads, "params": PARAMS.get(backend, {})})
            proc = subprocess.run(
                [sys.executable, __file__, "--child", spec],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            records.append(rec)
            write(records)
            print(json.dumps({k: rec[k] for k in ("backend", "threads", "omp_wait_policy", "total_cpu_s",
                                                   "total_wall_s", "load1_before")}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
