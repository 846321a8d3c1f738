"""CPU-seconds and wall time of the torch backends on Adult at 1 and 2 torch threads (issue 18).

Usage::

    nice .venv/bin/python benchmarks/bench_threads.py                      # the published set
    nice .venv/bin/python benchmarks/bench_threads.py --backends lipschitz-vae --threads 1 2
    OMP_WAIT_POLICY=PASSIVE nice .venv/bin/python benchmarks/bench_threads.py --compare slicing

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


def compare(backend: str, params: dict[str, Any]) -> dict[str, Any]:
    """Fit + sample twice in this process (1, then 2 threads; same seed) and quantify the differences."""
    import numpy as np

    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    train, schema = load_adult("train"), adult_schema()
    fits = []
    for threads in (1, 2):
        syn = Synthesizer(backend, epsilon=5.1, delta=1e-5, schema=schema, random_state=0, device="cpu",
                          backend_params={**params, "threads": threads})  # fmt: skip
        syn.fit(train)
        fits.append((syn, syn.sample(len(train))))
    (s1, t1), (s2, t2) = fits
    out: dict[str, Any] = {
        "backend": backend,
        "params": params,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    rel1, rel2 = getattr(s1.backend_, "release_", None), getattr(s2.backend_, "release_", None)
    if rel1 is not None and rel2 is not None:
        d = np.abs(rel1.noisy.astype(np.float64) - rel2.noisy.astype(np.float64))
        out["release_max_abs_diff"] = float(d.max())
        out["release_max_abs"] = float(np.abs(rel1.noisy).max())
        out["release_identical"] = bool(d.max() == 0.0)
    a1, _ = s1.backend_.get_state()
    a2, _ = s2.backend_.get_state()
    out["weights_max_abs_diff"] = max(
        float(np.abs(np.asarray(a1[k], np.float64) - np.asarray(a2[k], np.float64)).max())
        for k in a1
        if k in a2
    )
    cells = [float((t1[c].astype(str).to_numpy() != t2[c].astype(str).to_numpy()).mean()) for c in t1.columns]
    out["share_of_cells_differing"] = round(float(np.mean(cells)), 4)
    tvd = []
    for col in schema:
        if col.kind == "categorical":
            p = t1[col.name].astype(str).value_counts(normalize=True)
            q = t2[col.name].astype(str).value_counts(normalize=True)
        else:
            assert col.lower is not None and col.upper is not None
            edges = np.linspace(float(col.lower), float(col.upper), 21)
            p = pd_hist(t1[col.name], edges)
            q = pd_hist(t2[col.name], edges)
        tvd.append(0.5 * float(p.sub(q, fill_value=0.0).abs().sum()))
    out["mean_1way_tvd_between_tables"] = round(float(np.mean(tvd)), 4)
    out["max_1way_tvd_between_tables"] = round(float(np.max(tvd)), 4)
    return out


def pd_hist(s: Any, edges: Any) -> Any:
    """Share of values per bin of ``edges`` (missing as its own bin), as a pandas Series."""
    import numpy as np
    import pandas as pd

    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    codes = np.where(np.isnan(x), -1, np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2))
    return pd.Series(codes).value_counts(normalize=True)


def write(records: list[dict[str, Any]]) -> None:
    """Write ``threads.json`` and ``threads.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    path = RESULTS / "threads.json"
    comparisons = json.loads(path.read_text()).get("comparisons", []) if path.exists() else []
    doc = {"machine": meta, "runs": records, "comparisons": comparisons}
    path.write_text(json.dumps(doc, indent=2) + "\n")
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
    if comparisons:
        lines += [
            "",
            "## Same seed, 1 vs 2 threads, one process (`--compare`)",
            "",
            "| backend | OMP_WAIT_POLICY | release identical | release max abs diff (max abs) | "
            "weights max abs diff | share of cells differing | 1-way TVD between tables (mean / max) |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in comparisons:
            rel = "-" if "release_identical" not in c else ("yes" if c["release_identical"] else "no")
            rd = (
                "-"
                if "release_max_abs_diff" not in c
                else f"{c['release_max_abs_diff']:.3g} ({c['release_max_abs']:.3g})"
            )
            lines.append(
                f"| {c['backend']} | {c['omp_wait_policy'] or '-'} | {rel} | {rd} | "
                f"{c['weights_max_abs_diff']:.3g} | {c['share_of_cells_differing']} | "
                f"{c['mean_1way_tvd_between_tables']} / {c['max_1way_tvd_between_tables']} |"
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
    ap.add_argument(
        "--compare",
        metavar="BACKEND",
        help="fit BACKEND at 1 then 2 threads in one process and quantify the differences "
        "(appended to threads.json as 'comparisons'); run with OMP_WAIT_POLICY=PASSIVE",
    )
    args = ap.parse_args()
    if args.compare:
        res = compare(args.compare, PARAMS.get(args.compare, {}))
        path = RESULTS / "threads.json"
        doc = json.loads(path.read_text()) if path.exists() else {"runs": []}
        doc["comparisons"] = [c for c in doc.get("comparisons", []) if c["backend"] != args.compare] + [res]
        path.write_text(json.dumps(doc, indent=2) + "\n")
        write(doc["runs"])
        print(json.dumps(res))
        return
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["backend"], spec["threads"], spec["params"])))
        return
    # Keep earlier runs of other configurations (a configuration's new run replaces its old one).
    old = RESULTS / "threads.json"
    records: list[dict[str, Any]] = json.loads(old.read_text())["runs"] if old.exists() else []
    for backend in args.backends:
        configs: list[tuple[int, str | None]] = [(t, None) for t in args.threads]
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
            key = (backend, threads, policy)
            records = [r for r in records if (r["backend"], r["threads"], r["omp_wait_policy"]) != key]
            records.append(rec)
            write(records)
            print(json.dumps({k: rec[k] for k in ("backend", "threads", "omp_wait_policy", "total_cpu_s",
                                                   "total_wall_s", "load1_before")}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
