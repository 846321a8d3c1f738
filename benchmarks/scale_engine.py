"""The data pass at census scale: default engine vs Dask on a 2-worker LocalCluster, and 10M-row sampling.

``nice python -m benchmarks.scale_engine [--sizes 1000000 3000000 10000000] [--engines default dask]``

**Rows (a load test, not a quality figure):** the 1980 census extract
(``../shared/datasets/census/fertility1980.csv``, 254,654 rows, schema
``benchmarks/schemas/fertility1980.schema.json``) resampled with replacement by a public, stated rule:
row ``i`` of the big table is row ``idx[i]`` of the extract, ``idx = numpy.random.default_rng(0)
.integers(0, 254654, max(sizes))`` (PCG64, seed 0). The table of n rows is the first n rows (a prefix
of an i.i.d. bootstrap sample is an i.i.d. bootstrap sample). Written as one CSV file per n (the
default engine reads one file; Dask cuts it into byte ranges of at most 64 MB, as many as a multiple
of the workers, its partitions) and, for the
largest n, as Parquet partitions of 1M rows (Dask only).

**Measured, per engine and n, each in a fresh process:** wall time of (1) reading and validating the
table against the schema (default: ``read_table`` + ``Schema.validate``; Dask: the validation pass on
the workers), (2) the exact counts of all 28 two-way marginals of the domain (``exact_marginals``, the
data pass of ``mst``/``aim``), (3) ``independent``'s one-way histograms; peak resident memory of the
client process and of each worker (``VmHWM``), CPU seconds of the whole process tree, the load
average. Then **sampling** 10M rows from ``mst`` fitted on the 1M table, block by block into a CSV
file (``Synthesizer.sample_chunks`` + ``write_table_chunks``): wall, CPU and the peak memory before
and after sampling. Figures are recorded, never asserted (shared 2-core machine). Writes
``benchmarks/results/scale_engine.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.runner import ROOT, _resolve

SCHEMA = ROOT / "benchmarks" / "schemas" / "fertility1980.schema.json"
SOURCE = "../shared/datasets/census/fertility1980.csv"
SEED = 0
PARQUET_ROWS = 1_000_000


def _kib_to_mib(k: int) -> float:
    return k / 1024.0


def peak_rss_mib() -> float:
    """Peak resident memory of this process since it started (``VmHWM``; ``ru_maxrss`` would carry
    the parent's peak across fork and exec)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return _kib_to_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def build_tables(sizes: list[int], work: Path, parquet: bool) -> dict[str, Any]:
    """Write the resampled tables (one CSV per n; Parquet partitions for the largest n)."""
    import pandas as pd

    work.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(_resolve(SOURCE), keep_default_na=False, na_values=[""])
    n_max = max(sizes)
    big = work / f"fertility_{n_max}.csv"
    t0 = time.perf_counter()
    if not big.exists():
        idx = np.random.default_rng(SEED).integers(0, len(base), n_max)
        tmp = big.with_suffix(".part")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for k, start in enumerate(range(0, n_max, 1_000_000)):
                base.iloc[idx[start : start + 1_000_000]].to_csv(fh, index=False, header=k == 0)
        tmp.rename(big)
    files = {n_max: big}
    for n in sorted(set(sizes) - {n_max}):
        p = work / f"fertility_{n}.csv"
        if not p.exists():
            with open(big, "rb") as src, open(p.with_suffix(".part"), "wb") as dst:
                for line in itertools.islice(src, n + 1):  # header + the first n rows
                    dst.write(line)
            p.with_suffix(".part").rename(p)
        files[n] = p
    pq_dir = work / f"fertility_{n_max}_parquet"
    if parquet and not pq_dir.exists():
        tmp_dir = work / "parquet.part"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir()
        for k, chunk in enumerate(
            pd.read_csv(big, keep_default_na=False, na_values=[""], chunksize=PARQUET_ROWS)
        ):
            chunk.to_parquet(tmp_dir / f"part-{k:03d}.parquet", index=False)
        tmp_dir.rename(pq_dir)
    return {
        "files": {str(n): str(p) for n, p in files.items()},
        "bytes": {str(n): p.stat().st_size for n, p in files.items()},
        "parquet_dir": str(pq_dir) if parquet else None,
        "build_wall_s": time.perf_counter() - t0,
    }


# -- one measurement (run in a fresh process) ----------------------------------------------------------
def run_pass(engine: str, path: str) -> dict[str, Any]:
    """Validate, count all 2-way marginals, count independent's histograms; report time and memory."""
    from tabpriv.backends.independent import _true_histograms, histogram_layout
    from tabpriv.backends.marginal.domain import MarginalDomain
    from tabpriv.backends.marginal.measure import exact_marginals
    from tabpriv.io import read_table
    from tabpriv.schema import Schema
    from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES
    from tabpriv.transformers.table import TableTransformer

    schema = Schema.load(SCHEMA)
    tt = TableTransformer(schema).fit()
    out: dict[str, Any] = {"engine": engine}
    t0 = time.perf_counter()
    session = None
    if engine == "default":
        clean = schema.validate(read_table(path, schema))[0]
        table = tt.transform_lazy(clean)
    else:
        from tabpriv.engine.dask_engine import DaskSession

        session = DaskSession(None).__enter__()  # 2 workers here (one per core), loopback, no dashboard
        out["cluster_start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        table, _ = session.open_table(path, schema, tt)
        out["partitions"] = table.engine_source.n_partitions
    t1 = time.perf_counter()
    domain = MarginalDomain(tt.spans_)
    pairs = list(itertools.combinations(range(len(domain)), 2))
    counts = exact_marginals(table, domain, pairs)
    t2 = time.perf_counter()
    layouts = [histogram_layout(s, 32) for s in tt.spans_]
    hist = _true_histograms(table, layouts, DEFAULT_CHUNK_BYTES)
    t3 = time.perf_counter()
    n = table.n_rows
    # sanity only (exact figures are not written anywhere): every marginal sums to n
    assert all(int(c.sum()) == n for c in counts.values()) and all(int(h.sum()) == n for h in hist)
    out.update(
        n=n,
        validate_s=t1 - t0,
        two_way_s=t2 - t1,
        one_way_s=t3 - t2,
        data_pass_s=t3 - t0,
        n_two_way=len(pairs),
        two_way_cells=int(sum(c.size for c in counts.values())),
    )
    if session is not None:
        workers = session.client.run(_worker_usage)
        out["workers"] = len(workers)
        out["worker_peak_rss_mib"] = [round(w["maxrss_mib"], 1) for w in workers.values()]
        out["worker_cpu_s"] = sum(w["cpu_s"] for w in workers.values())
        session.__exit__(None, None, None)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["client_peak_rss_mib"] = peak_rss_mib()
    out["client_cpu_s"] = ru.ru_utime + ru.ru_stime
    return out


def _worker_usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"maxrss_mib": peak_rss_mib(), "cpu_s": ru.ru_utime + ru.ru_stime}


def run_sample(path: str, n_sample: int, out_csv: str) -> dict[str, Any]:
    """Fit mst on ``path`` (default engine), then sample ``n_sample`` rows block by block into a CSV."""
    import torch

    torch.set_num_threads(1)
    from tabpriv import Synthesizer
    from tabpriv.io import read_table, write_table_chunks
    from tabpriv.schema import Schema

    schema = Schema.load(SCHEMA)
    df = read_table(path, schema)
    n = len(df)
    t0 = time.perf_counter()
    synth = Synthesizer(
        backend="mst", epsilon=5.1, delta=min(1e-5, 0.1 / n), schema=schema, random_state=0, device="cpu"
    ).fit(df)
    t1 = time.perf_counter()
    del df
    rss_fit = peak_rss_mib()
    rows = write_table_chunks(synth.sample_chunks(n_sample), out_csv, schema=synth.schema_)
    t2 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    size = os.path.getsize(out_csv)
    os.unlink(out_csv)
    return {
        "engine": "sample",
        "backend": "mst",
        "fit_rows": n,
        "rows": rows,
        "block_rows": synth.sample_chunk_rows(),
        "fit_s": t1 - t0,
        "sample_write_s": t2 - t1,
        "output_mib": size / 2**20,
        "peak_rss_after_fit_mib": rss_fit,
        "peak_rss_after_sampling_mib": peak_rss_mib(),
        "client_cpu_s": ru.ru_utime + ru.ru_stime,
    }


# -- driver -----------------------------------------------------------------------------------------
def _child(args: list[str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale_engine", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{res.stderr[-4000:]}")
    row: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = time.perf_counter() - t0
    row["tree_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    row["load_avg_1min_before"] = load0
    row["load_avg_1min_after"] = os.getloadavg()[0]
    row["cpus"] = os.cpu_count()
    print(json.dumps(row), flush=True)
    return row


def _markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Scale: the data pass on the default engine and on Dask (load test, not a quality figure)",
        "",
        f"Rows: the 1980 census extract resampled with replacement (numpy PCG64 seed {SEED}; the table "
        "of n rows is the first n draws). CSV: one file per n (Dask: byte ranges of <= 64 MB, "
        "a multiple of 2 partitions); "
        "Parquet: 1M-row files. Pass = validate against the schema + all 28 two-way marginal counts + "
        "independent's one-way histograms. Dask: LocalCluster, 2 worker processes x 1 thread, "
        "127.0.0.1, no dashboard (cluster start not counted in the pass). Shared 2-core CPU, run with "
        "nice; load average recorded. Peak memory = VmHWM of each process (client; each worker).",
        "",
        f"Command: `{meta['command']}` ({meta['date']}, commit {meta['commit']}).",
        "",
        "| engine | input | n | partitions | validate s | 2-way s | 1-way s | pass s | s per 1M rows "
        "| client peak MiB | worker peak MiB | tree CPU s | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["engine"] == "sample":
            continue
        workers = "/".join(f"{x:.0f}" for x in r.get("worker_peak_rss_mib", [])) or "-"
        lines.append(
            f"| {r['engine']} | {r.get('input', 'csv')} | {r['n']:,} | {r.get('partitions', 1)} | "
            f"{r['validate_s']:.1f} | {r['two_way_s']:.1f} | {r['one_way_s']:.1f} | {r['data_pass_s']:.1f} | "
            f"{r['data_pass_s'] / r['n'] * 1e6:.2f} | {r['client_peak_rss_mib']:.0f} | {workers} | "
            f"{r['tree_cpu_s']:.0f} | {r['load_avg_1min_before']:.1f}/{r['load_avg_1min_after']:.1f} |"
        )
    for r in rows:
        if r["engine"] != "sample":
            continue
        lines += [
            "",
            f"Sampling: `{r['backend']}` fitted on the {r['fit_rows']:,}-row table (default engine, "
            f"{r['fit_s']:.1f} s), then {r['rows']:,} rows drawn in blocks of {r['block_rows']:,} and "
            f"written to CSV ({r['output_mib']:.0f} MiB) in {r['sample_write_s']:.1f} s; peak memory "
            f"{r['peak_rss_after_fit_mib']:.0f} MiB after the fit, {r['peak_rss_after_sampling_mib']:.0f} "
            f"MiB after sampling; {r['tree_cpu_s']:.0f} CPU s; load {r['load_avg_1min_before']:.1f}/"
            f"{r['load_avg_1min_after']:.1f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 3_000_000, 10_000_000])
    p.add_argument("--engines", nargs="*", default=["default", "dask"])
    p.add_argument("--sample-rows", type=int, default=10_000_000)
    p.add_argument("--no-parquet", action="store_true")
    p.add_argument("--work", default="/tmp/tabpriv_scale_engine")
    p.add_argument("--out", default="benchmarks/results/scale_engine")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--input", default="csv", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one == "sample":
        print(json.dumps(run_sample(a.path, a.sample_rows, str(Path(a.work) / "sample.csv"))))
        return 0
    if a.one is not None:
        row = run_pass(a.one, a.path)
        row["input"] = a.input
        print(json.dumps(row))
        return 0
    work = Path(a.work)
    data = build_tables(a.sizes, work, parquet=not a.no_parquet and "dask" in a.engines)
    print(json.dumps({"built": data}), flush=True)
    rows = []
    for n in sorted(a.sizes):
        for engine in a.engines:
            rows.append(_child(["--one", engine, "--path", data["files"][str(n)]]))
    if data["parquet_dir"]:
        rows.append(_child(["--one", "dask", "--path", data["parquet_dir"], "--input", "parquet"]))
    if a.sample_rows > 0:
        rows.append(
            _child(["--one", "sample", "--path", data["files"][str(min(a.sizes))], "--work", str(work),
                    "--sample-rows", str(a.sample_rows)])
        )  # fmt: skip
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    meta = {
        "command": "nice python -m benchmarks.scale_engine "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "data": data,
        "rule": f"bootstrap: idx = numpy.random.default_rng({SEED}).integers(0, len(extract), max(sizes)); "
        "table n = first n rows",
    }
    out = _resolve(a.out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(_markdown(meta, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
