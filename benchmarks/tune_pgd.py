"""The tuning runs of docs/pgd.md: one pgd fit on Adult (delta 1e-5, target income), 1- and 2-way TVD.

    OMP_NUM_THREADS=1 nice python -m benchmarks.tune_pgd '{"n_particles": 10000, "steps": 600}'
    EPS=1000 SEED=1 ... (environment: epsilon, default 5.1; seed, default 0)

Prints one JSON line: the parameters, mean 1- and 2-way TVD at 20 evaluation bins (as the runner), the
five worst pairs and columns, CPU-s (process time of fit + sample), wall s and the load average. The
figures are computed from the real table: for the data owner, not a release.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    from benchmarks.runner import load_dataset
    from tabpriv import Synthesizer
    from tabpriv.evaluation.discretize import discretize
    from tabpriv.evaluation.marginals import marginal_tvds

    ds = load_dataset(
        "adult", {"loader": "adult", "schema": "datasets/adult.schema.json", "target": "income"}
    )
    params = json.loads(argv[0]) if argv else {}
    seed = int(os.environ.get("SEED", 0))
    c0, t0 = time.process_time(), time.perf_counter()
    synth = Synthesizer(
        backend="pgd", epsilon=float(os.environ.get("EPS", 5.1)), delta=1e-5, schema=ds.schema, device="cpu",
        random_state=seed, backend_params={"target": "income", **params},
    )  # fmt: skip
    synth.fit(ds.train)
    out = synth.sample(len(ds.train))
    c1, t1 = time.process_time(), time.perf_counter()
    m = marginal_tvds(discretize(ds.train, ds.schema, 20), discretize(out, ds.schema, 20), max_triples=50)
    per_col = m["one_way"]["per_column"]
    res = {
        "params": params,
        "seed": seed,
        "tvd1": round(m["one_way"]["mean"], 4),
        "tvd2": round(m["two_way"]["mean"], 4),
        "worst_pairs": [(w["columns"], round(w["tvd"], 3)) for w in m["two_way"]["worst"]],
        "worst_columns": sorted(((round(v, 3), k) for k, v in per_col.items()), reverse=True)[:5],
        "cpu_s": round(c1 - c0, 1),
        "wall_s": round(t1 - t0, 1),
        "timings": {k: round(v, 1) for k, v in getattr(synth.backend_, "timings_", {}).items()},
        "load": os.getloadavg()[0],
    }
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
