"""Sampling 1M rows of an Adult release: in one process vs split across a 2-worker Dask LocalCluster.

``nice -n 10 python -m benchmarks.bench_dask_sampling [--rows 1000000] [--backend mst]``

One ``mst`` (default; ``--backend aim`` works too, but its fit takes ~15 min here) release of the
bundled Adult train split at ε = 5.1, seed 0, fitted once and saved. Then, **each mode in a fresh
process** that loads the saved release and gives it the same public sampling seed (a benchmark-only
override of the loaded synthesizer's random source, so the modes can be compared row for row):

* ``single``: ``Synthesizer.sample_chunks(n)`` + ``write_table_chunks`` into one Parquet file (what
  the CLI does today);
* ``parts``: ``Synthesizer.sample_to(folder, n)`` on the default engine (same blocks, part files);
* ``dask``: ``Synthesizer.sample_to(folder, n, engine="dask")`` on a 2-worker LocalCluster
  (1 thread each, loopback) started in that process before the clock starts (its start is timed
  separately), then a second call on the same, now warm, workers (its rows are the next call's).

Recorded per mode: wall seconds of the sampling call, CPU seconds of the client process
(``getrusage``, the scheduler included for the LocalCluster) and of each worker (``client.run``,
before/after), peak resident memory (``VmHWM``) of the client and of each worker, the load average,
and a SHA-256 of the rows (every part read back, concatenated) so that the modes are shown to write
the same table. Writes ``benchmarks/results/dask_sampling.json`` and ``.md``. Figures are recorded,
never asserted (shared 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.runner import ROOT

RESULTS = ROOT / "benchmarks" / "results"
MODES = ("single", "parts", "dask")


def peak_rss_mib() -> float:
    """``VmHWM`` of this process in MiB (``ru_maxrss`` would carry the parent's peak across exec)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker_figures() -> dict[str, float]:
    """Runs on a worker: its CPU seconds so far and its peak resident memory."""
    return {"cpu_s": cpu_seconds(), "peak_rss_mib": peak_rss_mib()}


def _rows_sha256(paths: list[Path]) -> str:
    import pandas as pd

    h = hashlib.sha256()
    for p in paths:
        df = pd.read_parquet(p)
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def fit(backend: str, model: Path) -> dict[str, Any]:
    from tabpriv import Synthesizer
    from tabpriv.datasets import adult_schema, load_adult

    df = load_adult("train")
    t0, c0 = time.perf_counter(), cpu_seconds()
    synth = Synthesizer(backend=backend, epsilon=5.1, schema=adult_schema(), random_state=0, device="cpu")
    synth.fit(df)
    out = {"backend": backend, "rows_in": len(df), "fit_wall_s": time.perf_counter() - t0}
    out["fit_cpu_s"] = cpu_seconds() - c0
    synth.save(model)
    out["chunk_rows"] = synth.sample_chunk_rows()
    out["encoded_width"] = synth.transformer_.width_
    return out


def run_mode(mode: str, model: Path, rows: int, out_dir: Path) -> dict[str, Any]:
    """One mode, in this (fresh) process."""
    from tabpriv import Synthesizer
    from tabpriv._random import RandomSource
    from tabpriv.io import write_table_chunks

    synth = Synthesizer.load(model)
    synth.random_source_ = RandomSource(12345, seeded=True)  # benchmark only: same seed in every mode
    rec: dict[str, Any] = {"mode": mode, "rows": rows, "load_before": os.getloadavg()}
    cluster = client = None
    if mode == "dask":
        import distributed

        t = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            processes=True,
            silence_logs=40,
        )
        client = distributed.Client(cluster, set_as_default=False)
        client.wait_for_workers(2)
        rec["cluster_start_s"] = time.perf_counter() - t
        before = client.run(_worker_figures)
    t0, c0 = time.perf_counter(), cpu_seconds()
    if mode == "single":
        paths = [out_dir / "single.parquet"]
        write_table_chunks(synth.sample_chunks(rows), paths[0], schema=synth.schema_)
    elif mode == "parts":
        paths = synth.sample_to(out_dir / "parts", rows)
    else:
        assert cluster is not None
        paths = synth.sample_to(out_dir / "dask", rows, engine="dask", scheduler=cluster.scheduler_address)
    rec["wall_s"] = time.perf_counter() - t0
    rec["client_cpu_s"] = cpu_seconds() - c0
    rec["client_peak_rss_mib"] = peak_rss_mib()
    rec["load_after"] = os.getloadavg()
    rec["parts"] = len(paths)
    rec["bytes"] = sum(p.stat().st_size for p in paths)
    if client is not None:
        assert cluster is not None
        after = client.run(_worker_figures)
        rec["workers"] = _deltas(before, after)
        rec["workers_cpu_s"] = sum(w["cpu_s"] for w in rec["workers"])
        # A second call on the same (warm) workers: the first one included importing tabpriv and
        # loading the release on each worker. Its rows are the next call's (another seed).
        t1, c1 = time.perf_counter(), cpu_seconds()
        warm = synth.sample_to(out_dir / "dask-2", rows, engine="dask", scheduler=cluster.scheduler_address)
        again = client.run(_worker_figures)
        rec["warm"] = {
            "wall_s": time.perf_counter() - t1,
            "client_cpu_s": cpu_seconds() - c1,
            "workers": _deltas(after, again),
            "parts": len(warm),
            "load_after": os.getloadavg(),
        }
        rec["warm"]["workers_cpu_s"] = sum(w["cpu_s"] for w in rec["warm"]["workers"])
        client.close()
        cluster.close()
    rec["rows_sha256"] = _rows_sha256(paths)
    return rec


def _deltas(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, float]]:
    return [
        {"cpu_s": after[w]["cpu_s"] - before[w]["cpu_s"], "peak_rss_mib": after[w]["peak_rss_mib"]}
        for w in sorted(after)
    ]


def _markdown(res: dict[str, Any]) -> str:
    f = res["fit"]
    lines = [
        "# Sampling 1M rows: one process vs a 2-worker Dask LocalCluster",
        "",
        f"`{res['command']}` — {res['date']}, commit {res['commit']}. Release: `{f['backend']}` on the "
        f"bundled Adult train split ({f['rows_in']:,} rows), ε = 5.1, seed 0 (fit {f['fit_wall_s']:.1f} s "
        f"wall, {f['fit_cpu_s']:.1f} CPU-s); {res['rows']:,} rows drawn in blocks of {f['chunk_rows']:,} "
        f"(encoded width {f['encoded_width']}), Parquet. Each mode in a fresh process loading the saved "
        "release with the same public sampling seed. Shared 2-core machine, `nice -n 10`, "
        "OMP_NUM_THREADS=1: other jobs ran at the same time (load below).",
        "",
        "| mode | parts | wall s | client CPU-s | workers CPU-s | client peak MiB | worker peak MiB | "
        "load 1-min before/after | rows SHA-256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["modes"]:
        workers = r.get("workers")
        lines.append(
            f"| {r['mode']} | {r['parts']} | {r['wall_s']:.1f} | {r['client_cpu_s']:.1f} | "
            + (
                f"{r['workers_cpu_s']:.1f} ({', '.join(format(w['cpu_s'], '.1f') for w in workers)})"
                if workers
                else "–"
            )
            + f" | {r['client_peak_rss_mib']:.0f} | "
            + (", ".join(f"{w['peak_rss_mib']:.0f}" for w in workers) if workers else "–")
            + f" | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} | `{r['rows_sha256'][:12]}` |"
        )
    d = next(r for r in res["modes"] if r["mode"] == "dask")
    w = d["warm"]
    lines.append(
        f"| dask, 2nd call (warm workers) | {w['parts']} | {w['wall_s']:.1f} | {w['client_cpu_s']:.1f} | "
        f"{w['workers_cpu_s']:.1f} ({', '.join(format(x['cpu_s'], '.1f') for x in w['workers'])}) | – | "
        f"{', '.join(format(x['peak_rss_mib'], '.0f') for x in w['workers'])} | – / {w['load_after'][0]:.1f} "
        "| (next call: other rows) |"
    )
    lines += [
        "",
        f"The LocalCluster's start (not in the wall time above): {d['cluster_start_s']:.1f} s. Same rows in "
        "every mode: the SHA-256 column (pandas row hashes of the parts read back, in order). The first "
        "Dask call includes importing tabpriv and loading the release on each worker; the second call "
        "on the same workers does not.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--backend", default="mst")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # internal: one mode, this process
    ap.add_argument("--model", type=Path, help="keep the fitted release here (reused when present)")
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mode is not None:
        print(json.dumps(run_mode(args.mode, args.model, args.rows, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="tabpriv-dask-sampling-") as tmp:
        model = args.model if args.model is not None else Path(tmp) / "model.tabpriv"  # --model: kept
        fit_json = model.with_suffix(".fit.json")
        if not (model.exists() and fit_json.exists()):
            fitted = subprocess.run(
                [sys.executable, "-c", "import json; from benchmarks.bench_dask_sampling import fit; from "
                 f"pathlib import Path; print(json.dumps(fit({args.backend!r}, Path({str(model)!r}))))"],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            fit_json.write_text(fitted.stdout.strip().splitlines()[-1])
        res: dict[str, Any] = {"fit": json.loads(fit_json.read_text()), "rows": args.rows}
        modes = []
        for mode in MODES:
            out = Path(tmp) / mode
            out.mkdir()
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_dask_sampling", "--mode", mode,
                 "--model", str(model), "--rows", str(args.rows), "--out", str(out)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            modes.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(mode, json.dumps(modes[-1]), flush=True)
        res["modes"] = modes
    res["command"] = "nice -n 10 python -m benchmarks.bench_dask_sampling " + " ".join(argv or sys.argv[1:])
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dask_sampling.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "dask_sampling.md").write_text(_markdown(res))
    print((RESULTS / "dask_sampling.md").read_text())


if __name__ == "__main__":
    main()
