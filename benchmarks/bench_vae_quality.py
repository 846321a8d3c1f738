"""Do the VAE backends learn the target's dependence? A measured grid (issue 18, quality section).

For ``dpsgd-vae``, ``dp2-vae`` and ``lipschitz-vae`` on Adult and CPS 1988 (the grid's loaders and
hold-outs, :func:`benchmarks.runner.load_dataset` with ``benchmarks/config.toml``), at ε = 5.1 (and 10),
three seeds, the variants of :data:`VARIANTS`:

* ``default``: the backend's default parameters;
* ``cond``: ``condition_on=<target>`` (the decoder is conditioned on the target; the target's noisy
  histogram is paid from the budget, ``condition_fraction`` = 0.1 of ε and δ by default);
* ``steps``: more training steps (``epochs=20`` for the DP-SGD backends; ``steps=20000`` decoder
  steps for dp2-vae, whose decoder already gets the whole budget);
* ``wide`` / ``narrow``: the hidden width one step each way (x2 and /2).

Next to them the ``independent`` floor (3 seeds) and, once per dataset, ``aim`` (target-weighted) as a
reference. Every run is one subprocess (``--child``): fit on the training split through the public API
(``Synthesizer``, ``threads=1``, ``OMP_NUM_THREADS=1``; the dataset's target goes to every backend that
takes a ``target`` parameter, as in :func:`benchmarks.runner.public_backend_params`, and a variant's
own parameters win), sample as many rows as the training split,
and score with :func:`tabpriv.evaluation.evaluate` (:func:`benchmarks.runner.score`: 20 bins, the
current integer levels, hold-out = Adult's test split / CPS 1988's seeded 20%, target income /
parttime). Recorded per run: mean 2-way TVD (and its mean over the pairs that contain the target),
LR ROC AUC (train synthetic, test real), 1-way TVD, CPU seconds of fit, sample and evaluation
(``resource.getrusage`` of the child, user + system), wall seconds, the 1-minute load average before
and after, and the seed.

Runs go into ``benchmarks/results/vae_quality.json`` (or ``$TABPRIV_VQ_RESULTS/``: the grid here
ran from a clean ``git worktree`` of the commit named in each run, so that other work in progress in
the checkout could not enter it, and wrote into the checkout's results) as they finish (a rerun skips
the runs already there, so the grid can be run in pieces); ``--report`` (also done after every run)
writes the medians over seeds to ``benchmarks/results/vae_quality.md``::

    nice .venv/bin/python -m benchmarks.bench_vae_quality --eps 5.1 --tiers 1 2
    nice .venv/bin/python -m benchmarks.bench_vae_quality --eps 10 --tiers 1
    nice .venv/bin/python -m benchmarks.bench_vae_quality --eps 5.1 --tiers 3   # aim, 1 seed
    .venv/bin/python -m benchmarks.bench_vae_quality --report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("TABPRIV_VQ_RESULTS", ROOT / "benchmarks" / "results"))
OUT_JSON = RESULTS / "vae_quality.json"
OUT_MD = RESULTS / "vae_quality.md"
CONFIG = ROOT / "benchmarks" / "config.toml"
DATASETS = ("adult", "cps1988")
SEEDS = (0, 1, 2)
EVAL_BINS = 20
TARGET = "<target>"  # replaced by the dataset's target

#: (backend, variant) -> (backend parameters, tier). Tier 1: default and conditioned (the question
#: asked); tier 2: the step and width knobs; tier 3: the aim reference (1 seed); tier 4: runs that
#: need a commit whose dpsgd-vae (dp2-vae: from the commit after 1a419a4) takes ``target``.
VARIANTS: dict[tuple[str, str], tuple[dict[str, Any], int]] = {
    ("independent", "default"): ({}, 1),
    ("dpsgd-vae", "default"): ({}, 1),
    ("dpsgd-vae", "cond"): ({"condition_on": TARGET}, 1),
    # Since dpsgd-vae (and dp2-vae) take ``target`` (they condition on a categorical one), their
    # "default" at such a commit is conditioned; "nocond" keeps the unconditioned model there.
    ("dpsgd-vae", "nocond"): ({"target": None}, 4),
    ("dp2-vae", "default"): ({}, 1),
    ("dp2-vae", "nocond"): ({"target": None}, 4),
    ("dp2-vae", "cond"): ({"condition_on": TARGET}, 1),
    ("lipschitz-vae", "default"): ({}, 1),
    ("dpsgd-vae", "steps"): ({"epochs": 20}, 2),
    ("dpsgd-vae", "wide"): ({"hidden": 64}, 2),
    ("dpsgd-vae", "narrow"): ({"hidden": 16}, 2),
    ("dp2-vae", "steps"): ({"steps": 20000}, 2),
    ("dp2-vae", "wide"): ({"hidden": 64}, 2),
    ("dp2-vae", "narrow"): ({"hidden": 16}, 2),
    ("lipschitz-vae", "steps"): ({"epochs": 20}, 2),
    ("lipschitz-vae", "wide"): ({"hidden": 128}, 2),
    ("lipschitz-vae", "narrow"): ({"hidden": 32}, 2),
    ("aim", "default"): ({}, 3),
}


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit, sample and evaluate one run in this process; return its figures."""
    import torch

    torch.set_num_threads(1)
    import tabpriv
    from benchmarks import runner
    from tabpriv import Synthesizer

    grid = tomllib.loads(CONFIG.read_text())
    ds = runner.load_dataset(spec["dataset"], grid["datasets"][spec["dataset"]])
    delta = float(grid["datasets"][spec["dataset"]].get("delta", grid["run"]["delta"]))
    params = runner.public_backend_params(spec["backend"], ds)  # the target, to backends taking one
    params.update({k: (ds.target if v == TARGET else v) for k, v in spec["params"].items()})
    if spec["backend"].endswith("-vae"):
        params["threads"] = 1
    load0 = os.getloadavg()[0]
    c0, t0 = _cpu(), time.perf_counter()
    synth = Synthesizer(
        backend=spec["backend"],
        epsilon=spec["epsilon"],
        delta=delta,
        schema=ds.schema,
        random_state=spec["seed"],
        backend_params=params,
    )
    synth.fit(ds.train)
    c1 = _cpu()
    out = synth.sample(len(ds.train))
    c2, t2 = _cpu(), time.perf_counter()
    privacy = synth.privacy_report.to_dict()
    rep = runner.score(ds, out, spec["seed"], EVAL_BINS, privacy)
    c3, t3 = _cpu(), time.perf_counter()
    head = runner.headline(rep)
    two = rep["marginals"]["two_way"]
    t_idx = two["columns"].index(ds.target)
    with_target = [v for j, v in enumerate(two["matrix"][t_idx]) if j != t_idx]
    return {
        **spec,
        "params_run": {k: v for k, v in params.items() if k != "threads"},
        "delta": delta,
        "epsilon_spent": privacy.get("epsilon"),
        "tvd_1way": head["tvd_1way"],
        "tvd_2way": head["tvd_2way"],
        "tvd_2way_holdout_baseline": head["tvd_2way_holdout_baseline"],
        "tvd_2way_target": sum(with_target) / len(with_target),
        "lr_auc": head["lr_auc_tstr"],
        "lr_auc_real": head["lr_auc_trtr"],
        "target_share_synth": float((out[ds.target] == ds.train[ds.target].mode()[0]).mean()),
        "target_share_real": float((ds.train[ds.target] == ds.train[ds.target].mode()[0]).mean()),
        "fit_cpu_s": round(c1 - c0, 2),
        "sample_cpu_s": round(c2 - c1, 2),
        "eval_cpu_s": round(c3 - c2, 2),
        "fit_sample_cpu_s": round(c2 - c0, 2),
        "fit_sample_wall_s": round(t2 - t0, 2),
        "eval_wall_s": round(t3 - t2, 2),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "n_train": len(ds.train),
        "tabpriv": str(Path(tabpriv.__file__).resolve().parent),
    }


def run_child(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One run in a subprocess (1 thread everywhere); an error is recorded, not raised."""
    env = {k: v for k, v in os.environ.items() if k != "TABPRIV_THREADS"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TABPRIV_THREADS="1")
    cmd = [sys.executable, "-m", "benchmarks.bench_vae_quality", "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timeout after {timeout_s} s"}
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr[-3000:]}
    rec: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rec


def _key(r: dict[str, Any]) -> tuple[str, str, str, float, int]:
    return (r["dataset"], r["backend"], r["variant"], float(r["epsilon"]), int(r["seed"]))


def load_doc() -> dict[str, Any]:
    """The results document so far (a fresh one when absent)."""
    if OUT_JSON.exists():
        doc: dict[str, Any] = json.loads(OUT_JSON.read_text())
        return doc
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "commits": [],
        "runs": [],
    }


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over seeds per (dataset, ε, backend, variant)."""
    groups: dict[tuple[str, float, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        if "error" in r:
            continue
        groups.setdefault((r["dataset"], float(r["epsilon"]), r["backend"], r["variant"]), []).append(r)
    out = []
    order = {k: i for i, k in enumerate(VARIANTS)}

    def rank(k: tuple[str, float, str, str]) -> tuple[str, float, int, str]:
        return (k[0], k[1], order.get((k[2], k[3].split("@")[0]), len(order)), k[3])

    for (ds, eps, b, v), rs in sorted(groups.items(), key=lambda kv: rank(kv[0])):
        out.append(
            {
                "dataset": ds,
                "epsilon": eps,
                "backend": b,
                "variant": v,
                "params": rs[0]["params_run"],
                "seeds": sorted(r["seed"] for r in rs),
                "tvd_2way": _median([r["tvd_2way"] for r in rs]),
                "lr_auc": _median([r["lr_auc"] for r in rs]),
                "lr_auc_all": [round(r["lr_auc"], 3) for r in sorted(rs, key=lambda r: r["seed"])],
                "lr_auc_below_half": sum(r["lr_auc"] < 0.5 for r in rs),
                "tvd_1way": _median([r["tvd_1way"] for r in rs]),
                "tvd_2way_target": _median([r["tvd_2way_target"] for r in rs if "tvd_2way_target" in r]),
                "fit_sample_cpu_s": _median([r["fit_sample_cpu_s"] for r in rs]),
                "lr_auc_real": rs[0]["lr_auc_real"],
                "tvd_2way_holdout_baseline": rs[0]["tvd_2way_holdout_baseline"],
                "loads": [r["load1_before"] for r in rs],
            }
        )
    return out


def markdown(doc: dict[str, Any]) -> str:
    """The medians table, one section per (dataset, ε)."""
    summ = doc["summary"]
    lines = [
        "# VAE backends: does the synthetic table carry the target's dependence? (issue 18)",
        "",
        "Written by `benchmarks/bench_vae_quality.py` (see `docs/vae_quality.md`). Medians over seeds; "
        "each run fits on the training split, samples as many rows, and is scored by "
        "`tabpriv.evaluation.evaluate` (20 bins, current integer levels; LR AUC: logistic regression "
        "trained on the synthetic rows, tested on the real hold-out). CPU-s: fit + sample, user + "
        f"system of the run's process, torch threads 1. Machine: {doc['machine']['cpus']} shared CPUs; "
        "loads: the 1-minute load average before each run. `below 0.5`: seeds with LR AUC < 0.5. "
        "`pairs with target`: mean 2-way TVD over the pairs (target, other column) (recorded from the "
        "runs after the first ones; median over the seeds that have it). "
        f"Commits: {', '.join(doc.get('commits', []))}.",
        "",
    ]
    for ds, eps in sorted({(s["dataset"], s["epsilon"]) for s in summ}):
        rows = [s for s in summ if s["dataset"] == ds and s["epsilon"] == eps]
        ref = rows[0]
        lines += [
            f"## {ds}, ε = {eps:g}",
            "",
            f"Real-data LR AUC (train real, test hold-out): {ref['lr_auc_real']:.3f}; 2-way TVD between "
            f"real train and hold-out (sampling noise): {ref['tvd_2way_holdout_baseline']:.4f}.",
            "",
            "| backend | variant | params | seeds | 2-way TVD | 2-way TVD, pairs with target | "
            "LR AUC (median) | LR AUC per seed | below 0.5 | 1-way TVD | CPU-s | loads |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            params = json.dumps({k: v for k, v in s["params"].items() if k != "target"}) or "{}"
            tt = "-" if s["tvd_2way_target"] is None else f"{s['tvd_2way_target']:.4f}"
            lines.append(
                f"| {s['backend']} | {s['variant']} | `{params}` | {len(s['seeds'])} | {s['tvd_2way']:.4f} | "
                f"{tt} | {s['lr_auc']:.3f} | {', '.join(f'{a:.3f}' for a in s['lr_auc_all'])} | "
                f"{s['lr_auc_below_half']} | {s['tvd_1way']:.4f} | {s['fit_sample_cpu_s']:.1f} | "
                f"{', '.join(f'{x:.1f}' for x in s['loads'])} |"
            )
        lines.append("")
    errors = [r for r in doc["runs"] if "error" in r]
    if errors:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['dataset']} {r['backend']} {r['variant']} ε={r['epsilon']} seed {r['seed']}: "
                  f"`{r['error'].strip().splitlines()[-1][:200]}`" for r in errors]  # fmt: skip
    return "\n".join(lines) + "\n"


def write(doc: dict[str, Any]) -> None:
    """Summarise and write ``vae_quality.json`` and ``vae_quality.md``."""
    doc["summary"] = summarise(doc["runs"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(doc, indent=1) + "\n")
    OUT_MD.write_text(markdown(doc))


def plan(
    eps: float,
    tiers: list[int],
    datasets: list[str],
    backends: list[str] | None,
    tag: str = "",
    seeds: tuple[int, ...] = SEEDS,
    variants: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Runs in priority order: by tier, then seed, then dataset, then variant (``variant@tag``)."""
    specs = []
    for tier in sorted(tiers):
        tier_seeds = seeds[:1] if tier == 3 else seeds
        for seed in tier_seeds:
            for ds in datasets:
                for (b, v), (params, t) in VARIANTS.items():
                    if t != tier or (backends and b not in backends) or (variants and v not in variants):
                        continue
                    specs.append(
                        {
                            "dataset": ds,
                            "backend": b,
                            "variant": f"{v}@{tag}" if tag else v,
                            "params": params,
                            "epsilon": eps,
                            "seed": seed,
                        }
                    )
    return specs


def main() -> None:
    """Run the requested part of the grid (skipping runs already recorded) and write the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--eps", type=float, default=5.1)
    ap.add_argument("--tiers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--backends", nargs="+", default=None)
    ap.add_argument("--timeout", type=float, default=1500.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--tag", default="", help="suffix of the variant names (e.g. the commit run)")
    ap.add_argument("--report", action="store_true", help="only rewrite the results from the JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    doc = load_doc()
    if args.report:
        write(doc)
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    if commit not in doc["commits"]:
        doc["commits"].append(commit)
    done = {_key(r) for r in doc["runs"] if "error" not in r}
    specs = plan(
        args.eps, args.tiers, args.datasets, args.backends, args.tag, tuple(args.seeds), args.variants
    )
    for spec in specs:
        if _key(spec) in done:
            continue
        rec = run_child(spec, args.timeout)
        rec["commit"] = commit
        doc["runs"] = [r for r in doc["runs"] if _key(r) != _key(rec)] + [rec]
        keys = (
            "dataset",
            "backend",
            "variant",
            "seed",
            "tvd_2way",
            "lr_auc",
            "fit_sample_cpu_s",
            "load1_before",
        )
        err = {"error": rec["error"][-300:]} if "error" in rec else {}
        print(json.dumps({k: rec.get(k) for k in keys} | err), flush=True)
        write(doc)


if __name__ == "__main__":
    main()
