"""CPU-seconds of the VAE backends on Adult, now vs a baseline commit, in one run (issue 18).

Usage (one invocation per group keeps each run under 10 CPU-minutes; later invocations against the
same baseline add their backends to the same results file)::

    nice .venv/bin/python benchmarks/bench_seed_speed.py --baseline 2cf6d15 --reps 3 \
        --backends lipschitz-vae dpsgd-vae
    nice .venv/bin/python benchmarks/bench_seed_speed.py --baseline 2cf6d15 --reps 3 --backends dp2-vae
    nice .venv/bin/python benchmarks/bench_seed_speed.py --backends dp2-vae --reps 1     # no baseline
    .venv/bin/python benchmarks/bench_seed_speed.py --device cuda --backends lipschitz-vae dp2-vae

Every run is one subprocess: it fits and samples Adult's training split through the public API
(``Synthesizer(backend, epsilon=5.1, delta=1e-5, random_state=0)``, the backend's default
parameters, ``threads=1``, ``OMP_NUM_THREADS=1``) and reports wall seconds (``time.perf_counter``),
CPU seconds of the whole process (user + system of every thread, ``resource.getrusage``; the import
time is left out), the 1-minute load average before and after, the torch thread count and a SHA-256
of the sampled CSV (32,561 rows; its seed follows from ``random_state=0``). The baseline runs from a
``git worktree`` of the given commit at ``/tmp/base`` with that folder as working directory and
first on ``PYTHONPATH``, so that its own ``tabpriv`` is imported (each record names the ``tabpriv``
it imported); the worktree is removed afterwards. Results:
``benchmarks/results/seed_speed.{json,md}`` (medians over the repetitions, ratio = baseline median /
current median). The machine is shared: compare rows of one run only.
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BASE_DIR = Path("/tmp/base")
BACKENDS = ("lipschitz-vae", "dpsgd-vae", "dp2-vae")


def child(backend: str, device: str, params: dict[str, Any]) -> dict[str, Any]:
    """Fit + sample once in this process; return the figures."""
    import resource

    import torch

    torch.set_num_threads(1)
    import tabpriv
    from tabpriv.datasets import adult_schema, load_adult
    from tabpriv.synthesizer import Synthesizer

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    train = load_adult("train")
    load0 = os.getloadavg()[0]
    c0, t0 = cpu(), time.perf_counter()
    syn = Synthesizer(backend, epsilon=5.1, delta=1e-5, schema=adult_schema(), random_state=0,
                      device=device, backend_params={**params, "threads": 1})  # fmt: skip
    syn.fit(train)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    c1, t1 = cpu(), time.perf_counter()
    out = syn.sample(len(train))  # sampling seed: from random_state=0
    c2, t2 = cpu(), time.perf_counter()
    digest = hashlib.sha256(out.to_csv(index=False).encode()).hexdigest()
    return {
        "backend": backend,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor(),
        "params": params,
        "tabpriv": str(Path(tabpriv.__file__).resolve().parent),
        "torch_threads": torch.get_num_threads(),
        "fit_wall_s": round(t1 - t0, 2),
        "fit_cpu_s": round(c1 - c0, 2),
        "sample_wall_s": round(t2 - t1, 2),
        "sample_cpu_s": round(c2 - c1, 2),
        "total_wall_s": round(t2 - t0, 2),
        "total_cpu_s": round(c2 - c0, 2),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "table_sha256": digest,
    }


def run_child(root: Path, backend: str, device: str, params: dict[str, Any]) -> dict[str, Any]:
    """One subprocess with ``root`` as working directory and first on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if k not in ("TABPRIV_THREADS", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(root))
    spec = json.dumps({"backend": backend, "device": device, "params": params})
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", spec],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({root}, {backend}):\n{proc.stderr[-4000:]}")
    rec: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rec


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one (version, backend) group."""
    out: dict[str, Any] = {"n": len(runs)}
    for key in ("total_cpu_s", "total_wall_s", "fit_cpu_s", "sample_cpu_s"):
        out[key] = round(statistics.median(r[key] for r in runs), 2)
    out["load1"] = [r["load1_before"] for r in runs]
    out["sha256"] = sorted({r["table_sha256"] for r in runs})
    return out


def write(doc: dict[str, Any], stem: str = "seed_speed") -> None:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``benchmarks/results``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    lines = [
        "# VAE backends: fit + sample on Adult (ε = 5.1, δ = 1e-5, seed 0, default parameters)",
        "",
        f"Machine: {m['cpus']} CPUs (shared), {m['platform']}, device `{doc['device']}`. Written by "
        "`benchmarks/bench_seed_speed.py`; one subprocess per run, torch threads 1, "
        "`OMP_NUM_THREADS=1`; CPU-s = user + system of the process (imports excluded); load = 1-minute "
        "load average before each run. Baseline: the commit "
        "(column `commit`) run from a git worktree in the same invocation as the current version it "
        f"is compared with (plus uncommitted edits, if any; invocations at {doc['started']}).",
        "",
        "| backend | version | commit | runs | total CPU-s (median) | wall s (median) | fit CPU-s | "
        "sample CPU-s | loads | ratio CPU-s (base/now) | same table as baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b, s in doc["summary"].items():
        base, now = s.get("baseline"), s.get("current")
        commits = {"baseline": s.get("baseline_commit") or "-", "current": s.get("current_commit") or "-"}
        for name, g in (("baseline", base), ("current", now)):
            if g is None or not isinstance(g, dict):
                continue
            ratio = "-"
            same = "-"
            if name == "current" and base is not None:
                ratio = f"{base['total_cpu_s'] / max(g['total_cpu_s'], 1e-9):.2f}x"
                same = "yes" if base["sha256"] == g["sha256"] else "no"
            lines.append(
                f"| {b} | {name} | `{commits[name]}` | {g['n']} | {g['total_cpu_s']} | {g['total_wall_s']} | "
                f"{g['fit_cpu_s']} | {g['sample_cpu_s']} | {', '.join(str(x) for x in g['load1'])} | "
                f"{ratio} | {same} |"
            )
    lines += [
        "",
        "`same table`: the sampled CSV's SHA-256 equals the baseline's in every run. dpsgd-vae and "
        "lipschitz-vae train with ghost clipping by default since issue 18 (the clipped sum by a second "
        "backward pass: equal up to float rounding, so a different model); with "
        '`grad_sample_mode="hooks"` they reproduce the baseline bit for bit (see `docs/vae.md`).',
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def git(*args: str) -> str:
    """Run git in the checkout; return stdout."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    """Run the baseline and current versions and write the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline", default=None, help="commit to compare with (default: none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="seed_speed", help="results file stem (default: seed_speed)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["backend"], spec["device"], spec["params"])))
        return
    doc: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "device": args.device,
        "current": git("rev-parse", "--short", "HEAD"),
        "baseline": args.baseline,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": [],
        "summary": {},
    }
    path = RESULTS / f"{args.out}.json"
    if path.exists():  # keep the other backends of an earlier invocation (each with its own baseline)
        old = json.loads(path.read_text())
        if old.get("device") == args.device:
            kept = [b for b in old["summary"] if b not in args.backends]
            doc["runs"] = [r for r in old["runs"] if r["backend"] in kept]
            doc["summary"] = {b: old["summary"][b] for b in kept}
            for b in kept:  # files written before baselines were recorded per backend
                doc["summary"][b].setdefault("baseline_commit", old.get("baseline"))
                doc["summary"][b].setdefault("current_commit", old.get("current"))
            if kept:
                doc["started"] = f"{old['started']}, {doc['started']}"
    versions: list[tuple[str, Path]] = [("current", ROOT)]
    if args.baseline:
        if BASE_DIR.exists():
            raise SystemExit(f"{BASE_DIR} exists; remove it (git worktree remove {BASE_DIR}) first.")
        git("worktree", "add", "--detach", str(BASE_DIR), args.baseline)
        versions.insert(0, ("baseline", BASE_DIR))
    try:
        for backend in args.backends:
            for rep in range(args.reps):
                for name, root in versions:  # interleaved, so load drifts hit both alike
                    rec = run_child(root, backend, args.device, {})
                    rec.update(version=name, rep=rep)
                    doc["runs"].append(rec)
                    keys = ("backend", "version", "total_cpu_s", "total_wall_s", "load1_before", "tabpriv")
                    print(json.dumps({k: rec[k] for k in keys}), flush=True)
            doc["summary"][backend] = {
                name: summarise([r for r in doc["runs"] if r["backend"] == backend and r["version"] == name])
                for name, _ in versions
            }
            doc["summary"][backend].update(baseline_commit=args.baseline, current_commit=doc["current"])
            write(doc, args.out)
    finally:
        if args.baseline:
            git("worktree", "remove", "--force", str(BASE_DIR))


if __name__ == "__main__":
    main()
