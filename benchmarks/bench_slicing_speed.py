"""CPU-seconds, wall, peak memory and output hashes of ``slicing`` on Adult vs a baseline tree (issue 18).

Usage::

    git worktree add /tmp/base_slicing <sha>        # the tree to compare with (e.g. the HEAD before)
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_slicing_speed.py --base /tmp/base_slicing
    git worktree remove /tmp/base_slicing

    # only the current tree, other backends / parameters, more repeats:
    nice .venv/bin/python benchmarks/bench_slicing_speed.py --backends slicing slicing-wasserstein --repeats 3

Every run is one subprocess (``OMP_NUM_THREADS=1``, ``backend_params={"threads": 1}``) that fits and
samples Adult's training split through the public API (ε = 5.1, δ = 1e-5, ``random_state=0``,
``device="cpu"``). A baseline run's subprocess has its cwd in the baseline tree and that tree first on
``sys.path``, so it imports the baseline's own ``tabpriv`` (the run records ``tabpriv.__file__``). Each
run reports CPU-seconds of the process (user + system of every thread, ``resource.getrusage``) for the
fit and for the sample, wall seconds, peak RSS (``ru_maxrss``) after the fit and at the end, the
1-minute load average before and after, torch's thread count, and SHA-256 digests of the sampled table's
CSV, of the saved release file (``save_release``) and of the generator weights, so that two trees'
outputs can be compared for the same seed. Runs alternate between the trees (``A B A B ...``) so that
the shared machine's load affects both alike; the summary gives the median over repeats and the ratio
current / baseline of the medians. Results: ``benchmarks/results/slicing_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: Backend parameters of the timed runs (the defaults: what a user gets).
PARAMS: dict[str, dict[str, Any]] = {"slicing": {}, "slicing-wasserstein": {}}


def child(tree: str, backend: str, params: dict[str, Any], device: str) -> dict[str, Any]:
    """Fit + sample once in this process (importing ``tabpriv`` from ``tree``); return the figures."""
    sys.path.insert(0, tree)
    import resource

    import numpy as np
    import torch

    import tabpriv
    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    torch.set_num_threads(1)

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    train = load_adult("train")
    rss0 = rss_mb()
    load0 = os.getloadavg()[0]
    c0, t0 = cpu(), time.perf_counter()
    syn = Synthesizer(backend, epsilon=5.1, delta=1e-5, schema=adult_schema(), random_state=0,
                      device=device, backend_params={**params, "threads": 1})  # fmt: skip
    syn.fit(train)
    c1, t1 = cpu(), time.perf_counter()
    rss_fit = rss_mb()
    out = syn.sample(len(train))
    c2, t2 = cpu(), time.perf_counter()
    be: Any = syn.backend_  # a SlicingBackend (save_release, weights_)
    with tempfile.TemporaryDirectory() as tmp:
        rel_path = Path(tmp) / "release.safetensors"
        be.save_release(rel_path)
        release_sha = hashlib.sha256(rel_path.read_bytes()).hexdigest()
    wh = hashlib.sha256()
    for name in sorted(be.weights_):
        wh.update(name.encode())
        wh.update(np.ascontiguousarray(be.weights_[name]).tobytes())
    return {
        "tree": tree,
        "tabpriv_file": tabpriv.__file__,
        "backend": backend,
        "params": params,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "fit_wall_s": round(t1 - t0, 2),
        "fit_cpu_s": round(c1 - c0, 2),
        "sample_wall_s": round(t2 - t1, 2),
        "sample_cpu_s": round(c2 - c1, 2),
        "total_wall_s": round(t2 - t0, 2),
        "total_cpu_s": round(c2 - c0, 2),
        "peak_rss_mb_before_fit": round(rss0, 1),
        "peak_rss_mb_after_fit": round(rss_fit, 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "table_sha256": hashlib.sha256(out.to_csv(index=False).encode()).hexdigest(),
        "release_sha256": release_sha,
        "weights_sha256": wh.hexdigest(),
    }


def run_child(tree: Path, backend: str, params: dict[str, Any], device: str) -> dict[str, Any]:
    """One run in a fresh subprocess with its cwd in ``tree``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TABPRIV_THREADS": "1", "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), "--backends", backend,
           "--params", json.dumps(params), "--device", device]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({tree}, {backend}):\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def git_sha(tree: Path) -> str:
    """The commit checked out in ``tree`` (with ``+dirty`` when its slicing files differ from it)."""
    head = ["git", "rev-parse", "HEAD"]
    sha = subprocess.run(head, cwd=tree, capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "tabpriv/backends/slicing"], cwd=tree,
                           capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    return sha + ("+dirty" if dirty else "")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median per (label, backend) and the current / baseline ratio of the medians."""
    keys = ["fit_cpu_s", "sample_cpu_s", "total_cpu_s", "total_wall_s", "peak_rss_mb"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["label"], r["backend"]), []).append(r)
    rows = []
    for (label, backend), rs in groups.items():
        row: dict[str, Any] = {"label": label, "backend": backend, "repeats": len(rs)}
        for k in keys:
            row[k] = round(statistics.median(r[k] for r in rs), 2)
        row["load1"] = [min(r["load1_before"] for r in rs), max(r["load1_after"] for r in rs)]
        row["table_sha256"] = sorted({r["table_sha256"] for r in rs})
        row["release_sha256"] = sorted({r["release_sha256"] for r in rs})
        rows.append(row)
    for row in rows:
        base = next((b for b in rows if b["label"] == "baseline" and b["backend"] == row["backend"]), None)
        if base is not None and row["label"] == "current":
            row["ratio_total_cpu"] = round(row["total_cpu_s"] / base["total_cpu_s"], 3)
            row["ratio_total_wall"] = round(row["total_wall_s"] / base["total_wall_s"], 3)
            row["ratio_peak_rss"] = round(row["peak_rss_mb"] / base["peak_rss_mb"], 3)
            row["same_table_as_baseline"] = row["table_sha256"] == base["table_sha256"]
            row["same_release_as_baseline"] = row["release_sha256"] == base["release_sha256"]
    return rows


def write(doc: dict[str, Any]) -> None:
    """Write ``slicing_speed.json`` and ``slicing_speed.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "slicing_speed.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    lines = [
        "# `slicing` speed on Adult (fit + sample, ε = 5.1, seed 0, torch threads 1)",
        "",
        f"Machine: {m['cpus']} CPUs (shared), {m['platform']}, torch {m['torch']}. Written by "
        "`benchmarks/bench_slicing_speed.py`; every run is one subprocess; CPU-s = user + system of the "
        "process; peak RSS = `ru_maxrss` of the process (Adult loaded: "
        f"{doc['runs'][0]['peak_rss_mb_before_fit']} MB before the fit); load = 1-minute load average "
        "(min before / max after over the repeats). Median over the repeats; runs alternate between the "
        "trees.",
        "",
        f"Current tree: `{doc['current_sha']}`. Baseline tree: `{doc.get('baseline_sha') or '-'}`.",
        "",
        "| tree | backend | repeats | fit CPU-s | sample CPU-s | total CPU-s | total wall s | peak RSS MB "
        "| load | CPU ratio | wall ratio | RSS ratio | same table | same release |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["summary"]:

        def g(key: str, r: dict[str, Any] = r) -> str:
            v = r.get(key)
            if v is None:
                return "-"
            if isinstance(v, bool):
                return "yes" if v else "NO"
            return str(v)

        lines.append(
            f"| {r['label']} | {r['backend']} | {r['repeats']} | {r['fit_cpu_s']} | {r['sample_cpu_s']} | "
            f"{r['total_cpu_s']} | {r['total_wall_s']} | {r['peak_rss_mb']} | "
            f"{r['load1'][0]}–{r['load1'][1]} | {g('ratio_total_cpu')} | {g('ratio_total_wall')} | "
            f"{g('ratio_peak_rss')} | {g('same_table_as_baseline')} | {g('same_release_as_baseline')} |"
        )
    lines += ["", "Runs:", "", "| tree | backend | fit CPU-s | sample CPU-s | wall s | peak RSS MB | load | "
              "table sha256 | release sha256 |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in doc["runs"]:
        lines.append(
            f"| {r['label']} | {r['backend']} | {r['fit_cpu_s']} | {r['sample_cpu_s']} | "
            f"{r['total_wall_s']} | {r['peak_rss_mb']} | {r['load1_before']}/{r['load1_after']} | "
            f"`{r['table_sha256'][:12]}` | `{r['release_sha256'][:12]}` |"
        )
    (RESULTS / "slicing_speed.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Alternate current/baseline runs in subprocesses and write the results."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=None, help="baseline tree (a git worktree)")
    ap.add_argument("--backends", nargs="+", default=["slicing"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--params", default=None, help="JSON backend params (default: PARAMS)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    a = ap.parse_args()
    if a.child is not None:
        params = json.loads(a.params) if a.params else {}
        print(json.dumps(child(a.child, a.backends[0], params, a.device)))
        return
    trees = [("current", ROOT)] + ([("baseline", a.base.resolve())] if a.base is not None else [])
    runs = []
    for _ in range(a.repeats):
        for backend in a.backends:
            params = json.loads(a.params) if a.params else PARAMS.get(backend, {})
            for label, tree in trees:
                r = {"label": label, **run_child(tree, backend, params, a.device)}
                print(json.dumps(r), flush=True)
                runs.append(r)
    import torch

    doc = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "current_sha": git_sha(ROOT),
        "baseline_sha": git_sha(a.base) if a.base is not None else None,
        "command": " ".join(sys.argv),
        "runs": runs,
        "summary": summarise(runs),
    }
    print(json.dumps(doc["summary"], indent=2))
    if not a.no_write:
        write(doc)


if __name__ == "__main__":
    main()
