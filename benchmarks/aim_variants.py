"""One library fit of a marginal backend with given public parameters on a grid dataset (ablations).

    python -m benchmarks.aim_variants cps1988 0 '{"coarse_levels": null}' [--eps 5.1] [--out rows.jsonl]

Fits ``Synthesizer(backend=..., backend_params=...)`` on the dataset's train split exactly as the grid's
child does (the dataset's target passed as ``target``), samples as many rows, evaluates with the grid's
``score`` and prints one JSON row: 1-/2-way TVD, LR AUC, rounds run, CPU-s and wall-s of fit + sample,
the peak RSS of the fit (VmHWM) and the load average. Used for the ablation tables of docs/marginal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

from benchmarks.runner import headline, load_dataset, peak_rss_mb, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("seed", type=int)
    ap.add_argument("params", nargs="?", default="{}", help="JSON backend_params (besides target)")
    ap.add_argument("--backend", default="aim")
    ap.add_argument("--eps", type=float, default=5.1)
    ap.add_argument("--no-target", action="store_true")
    ap.add_argument("--config", default="benchmarks/config_marginal_tabpriv.toml")
    ap.add_argument("--out", type=Path, default=None, help="append the row to this JSONL file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from tabpriv import Synthesizer

    spec = tomllib.loads(Path(args.config).read_text())["datasets"][args.dataset]
    ds = load_dataset(args.dataset, spec)
    params = {} if args.no_target else {"target": ds.target}
    params.update(json.loads(args.params))
    synth = Synthesizer(
        backend=args.backend, epsilon=args.eps, delta=float(spec.get("delta", 1e-5)), schema=ds.schema,
        random_state=args.seed, backend_params=params,
    )  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    synth.fit(ds.train)
    out = synth.sample(len(ds.train))
    cpu, wall, peak = time.process_time() - c0, time.perf_counter() - t0, peak_rss_mb()
    h = headline(score(ds, out, args.seed, 20, synth.privacy_report))
    row = {
        "dataset": args.dataset, "seed": args.seed, "epsilon": args.eps, "backend": args.backend,
        "params": params, "tvd_1way": h["tvd_1way"], "tvd_2way": h["tvd_2way"], "lr_auc": h["lr_auc_tstr"],
        "rounds": getattr(synth.backend_, "rounds_run_", None), "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1), "peak_rss_mb_fit": round(peak, 1), "load_avg_1min": os.getloadavg()[0],
    }  # fmt: skip
    line = json.dumps(row)
    sys.stdout.write(line + "\n")
    if args.out is not None:
        with args.out.open("a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
