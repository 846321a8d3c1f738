"""CPU time of an ``aim`` fit on Adult: this tree against a baseline tree, measured in the same run.

    python -m benchmarks.bench_aim_speed --baseline /work/wt_aim [--reps 1] [--params '{"rounds": 30}']
    python -m benchmarks.bench_aim_speed --child [--params ...]          (one fit; prints one JSON row)

Every fit is a fresh process (JAX's compiled programs and settings are per process), one torch thread,
``Synthesizer(backend="aim", epsilon=5.1, random_state=seed, backend_params={"target": "income", ...})``
on Adult's train split, then ``sample(len(train))``, exactly as ``benchmarks.aim_variants``. A row holds
the CPU-s of fit + sample (``resource.getrusage`` of the process: every thread, XLA's compile threads
included), the wall-s, the peak RSS (VmHWM), the load average before and after, the rounds run, the
1-/2-way TVD and LR AUC of the grid's ``score``, and SHA-256 digests of the sampled table and of the
release's arrays (noisy measurements and sampler tables), so that a change of compilation settings only
can be checked to leave the release's bytes unchanged.
``--env KEY=VALUE`` sets environment variables of the children (e.g. ``XLA_FLAGS`` ablations).
``--profile`` runs every child's fit + sample under cProfile with a CPU clock (``time.process_time``)
and adds to its row the calls and cumulative CPU-s of the fit's parts (:data:`PROFILED`): candidate
scoring (``aim._model_counts``/``_model_counts_all``), the model fits, the junction-tree sizes.

Writes ``benchmarks/results/aim_speed.json`` (every row, medians per tree, ratios current / baseline)
and ``aim_speed.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + ch.ru_utime + ch.ru_stime


#: (file suffix, function name) of the parts a ``--profile`` row reports (absent ones are skipped).
PROFILED = (
    ("marginal/aim.py", "_model_counts"),
    ("marginal/aim.py", "_model_counts_all"),
    ("marginal/aim.py", "_affordable"),
    ("marginal/model.py", "estimate"),
    ("marginal/model.py", "from_model"),
    ("marginal/model.py", "marginal"),
    ("marginal/model.py", "marginals"),
)


def _profiled(stats: Any) -> dict[str, dict[str, float]]:
    """Calls and cumulative CPU-s of the :data:`PROFILED` functions in a ``pstats.Stats``."""
    out: dict[str, dict[str, float]] = {}
    for (path, _line, name), (_cc, calls, _tt, cum, _callers) in stats.stats.items():
        for suffix, fn in PROFILED:
            if name == fn and path.endswith(suffix):
                out[fn] = {"calls": calls, "cum_cpu_s": round(cum, 2)}
    return out


def child(seed: int, eps: float, params: dict[str, Any], profile: bool = False) -> dict[str, Any]:
    """One fit + sample + evaluation in this process; the row of figures."""
    import torch

    torch.set_num_threads(1)
    from benchmarks.runner import headline, load_dataset, peak_rss_mb, score
    from tabpriv import Synthesizer

    spec = tomllib.loads((ROOT / "benchmarks" / "config_marginal_tabpriv.toml").read_text())["datasets"][
        "adult"
    ]
    ds = load_dataset("adult", spec)
    bp = {"target": ds.target, **params}
    load0 = os.getloadavg()[0]
    synth = Synthesizer(
        backend="aim", epsilon=eps, delta=float(spec.get("delta", 1e-5)), schema=ds.schema,
        random_state=seed, backend_params=bp,
    )  # fmt: skip
    prof = cProfile.Profile(time.process_time) if profile else None
    c0, t0 = _cpu_s(), time.perf_counter()
    if prof is not None:
        prof.enable()
    synth.fit(ds.train)
    fit_cpu = _cpu_s() - c0
    out = synth.sample(len(ds.train))
    if prof is not None:
        prof.disable()
    cpu, wall, peak = _cpu_s() - c0, time.perf_counter() - t0, peak_rss_mb()
    arrays, _ = synth.backend_.get_state()  # the release's arrays: noisy measurements, sampler tables
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    h = headline(score(ds, out, seed, 20, synth.privacy_report))
    import tabpriv

    return {
        "tree": str(Path(tabpriv.__file__).resolve().parent.parent), "seed": seed, "epsilon": eps,
        "params": bp, "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "rounds": getattr(synth.backend_, "rounds_run_", None),
        "cpu_s": round(cpu, 1), "fit_cpu_s": round(fit_cpu, 1), "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak, 1), "load_avg_before": round(load0, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "tvd_1way": h["tvd_1way"], "tvd_2way": h["tvd_2way"], "lr_auc": h["lr_auc_tstr"],
        "sample_sha256": hashlib.sha256(out.to_csv(index=False).encode()).hexdigest()[:16],
        "release_sha256": digest.hexdigest()[:16],
        **({"profile": _profiled(pstats.Stats(prof))} if prof is not None else {}),
    }  # fmt: skip


def _run_child(
    tree: Path, seed: int, eps: float, params: dict[str, Any], env: dict[str, str], profile: bool = False
) -> dict[str, Any]:
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench_aim_speed.py"), "--child", "--seed", str(seed),
        "--eps", str(eps), "--params", json.dumps(params), *(["--profile"] if profile else []),
    ]  # fmt: skip
    full_env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", **env}
    res = subprocess.run(cmd, cwd=tree, env=full_env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child in {tree} failed:\n{res.stderr[-4000:]}")
    row: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    row["label"] = "baseline" if tree != ROOT else "current"
    row["env"] = env
    return row


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 4) if vals else None


def _markdown(summary: dict[str, Any]) -> str:
    keys = ["cpu_s", "wall_s", "peak_rss_mb", "rounds", "tvd_2way", "lr_auc", "tvd_1way"]
    lines = [
        "# aim fit + sample on Adult (eps = 5.1, target income): CPU time, this tree vs baseline",
        "",
        f"Command: `{summary['command']}`. Params: `{json.dumps(summary['params'])}`. "
        f"Machine: {summary['machine']}. Medians of {summary['reps']} run(s) per tree, fresh process each.",
        "",
        "| tree | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for label, med in summary["medians"].items():
        lines.append(f"| {label} | " + " | ".join(str(med[k]) for k in keys) + " |")
    lines += ["", f"Ratios to the baseline: `{json.dumps(summary['ratios'])}`", "", "Rows:", ""]
    for r in summary["rows"]:
        lines.append(
            f"- {r['label']}: cpu {r['cpu_s']} s, wall {r['wall_s']} s, RSS {r['peak_rss_mb']} MB, load "
            f"{r['load_avg_before']}->{r['load_avg_after']}, rounds {r['rounds']}, "
            f"2-way TVD {r['tvd_2way']}, LR AUC {r['lr_auc']}, sample {r['sample_sha256']}, "
            f"release {r['release_sha256']}, env {r.get('env', {})}"
            + (f", profile (calls, cumulative CPU-s) {json.dumps(r['profile'])}" if r.get("profile") else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", action="store_true", help="run one fit in this process")
    ap.add_argument("--baseline", type=Path, default=None, help="a worktree of the baseline commit")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eps", type=float, default=5.1)
    ap.add_argument("--params", default="{}", help="JSON backend_params besides target (both trees)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the children")
    ap.add_argument("--out", default="aim_speed", help="results file stem under benchmarks/results")
    ap.add_argument("--profile", action="store_true", help="cProfile (CPU clock) every child's fit")
    ap.add_argument(
        "--rows",
        action="append",
        default=[],
        metavar="LABEL=FILE",
        help="also summarise a child row measured earlier (its JSON line in FILE) under LABEL",
    )
    args = ap.parse_args(argv)
    params = json.loads(args.params)
    if args.child:
        sys.stdout.write(json.dumps(child(args.seed, args.eps, params, args.profile)) + "\n")
        return 0
    env = dict(kv.split("=", 1) for kv in args.env)
    trees = ([args.baseline] if args.baseline is not None else []) + [ROOT]
    rows = []
    for spec in args.rows:
        label, path = spec.split("=", 1)
        rows.append({**json.loads(Path(path).read_text().strip().splitlines()[-1]), "label": label})
        trees = []  # summarise the given rows only
    for _ in range(args.reps if trees else 0):
        for tree in trees:
            rows.append(_run_child(tree.resolve(), args.seed, args.eps, params, env, args.profile))
            sys.stderr.write(json.dumps(rows[-1]) + "\n")
    medians = {
        label: {k: _median([r for r in rows if r["label"] == label], k)
                for k in ("cpu_s", "wall_s", "peak_rss_mb", "rounds", "tvd_2way", "lr_auc", "tvd_1way")}
        for label in dict.fromkeys(r["label"] for r in rows)
    }  # fmt: skip
    ratios: dict[str, dict[str, float | None]] = {}
    if "baseline" in medians:
        for label in medians:
            if label != "baseline":
                ratios[label] = {}
                for k in ("cpu_s", "wall_s", "peak_rss_mb"):
                    b, c = medians["baseline"][k], medians[label][k]
                    ratios[label][k] = round(c / b, 3) if b and c else None
    summary = {
        "command": "python -m benchmarks.bench_aim_speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "params": params, "env": env, "reps": args.reps, "machine": f"{os.cpu_count()} CPUs, shared",
        "medians": medians, "ratios": ratios, "rows": rows,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(_markdown(summary))
    sys.stdout.write(_markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
