"""Load benchmark of the public API: 30 mixed columns, one-hot width 2,000, up to 1,000,000 rows.

Usage::

    .venv/bin/python benchmarks/bench_load.py                                   # the published set
    .venv/bin/python benchmarks/bench_load.py --backends independent --rows 100000 300000 1000000
    .venv/bin/python benchmarks/bench_load.py --backends slicing --rows 100000 --merge
    .venv/bin/python benchmarks/bench_load.py --backends dpsgd-vae --rows 100000 \\
        --params '{"epochs": 1, "batch_size": 256}' --merge     # short training: params are recorded

Every measurement goes through the public path only::

    synth = Synthesizer(backend=B, epsilon=5.1, delta=1e-9, schema=schema)
    synth.fit(df)            # validates, then passes a *lazy* EncodedTable to the backend
    out = synth.sample(n)    # draws and decodes in blocks of Synthesizer.sample_chunk_rows() rows

Each (backend, rows) configuration runs in its own subprocess, which generates the table, then times
four phases: ``Schema.validate`` alone (the first step of ``fit``, measured separately to show its cost),
``fit`` (validation included again), and ``sample(rows)``. Before each phase the process's peak-RSS
counter is reset (``echo 5 > /proc/self/clear_refs``) and after it the peak is read from
``/proc/self/status`` (``VmHWM``), so each phase's peak is the process's true resident high-water mark
during that phase (it includes what was already resident: the input DataFrame, the interpreter and
libraries; ``base`` is the RSS when the phase started). Threads: ``OMP_NUM_THREADS=1`` and, for
backends that use torch, ``torch.set_num_threads(1)``. Results go to ``benchmarks/results/load.json``
(records of the same backend and row count are replaced) and ``benchmarks/results/load.md``. Timings on
a shared CPU are noisy: compare rows of the same run only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_CAT_SIZES = [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30, 40, 50, 60, 100, 200, 400]
TORCH_BACKENDS = {"slicing", "slicing-wasserstein", "dp2-vae", "dpsgd-vae", "lipschitz-vae"}


def make_schema() -> Any:
    """30 columns: 18 categorical, 8 continuous (2 with missing), 4 integer (1 with missing); width 2000."""
    from tabpriv.schema import Column, Schema

    cols = []
    for j in range(8):
        cols.append(Column(f"cont{j}", "continuous", lower=-100.0, upper=100.0, missing=j < 2))
    for j in range(4):
        cols.append(Column(f"int{j}", "integer", lower=0, upper=120, missing=j == 0))
    numeric_width = 8 + 2 + 4 + 1
    sizes = list(N_CAT_SIZES)
    sizes[-1] = 2000 - numeric_width - sum(sizes[:-1])
    for j, k in enumerate(sizes):
        cols.append(Column(f"cat{j}", "categorical", categories=tuple(f"v{i}" for i in range(k))))
    return Schema(tuple(cols))


def make_chunk(schema: Any, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of the generated table (Zipf-like categories, normal numbers, 5% missing)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col in schema:
        if col.kind == "categorical":
            k = len(col.categories)
            p = 1.0 / np.arange(1, k + 1)
            idx = rng.choice(k, size=n, p=p / p.sum())
            data[col.name] = np.asarray(col.categories, dtype=object)[idx]
        elif col.kind == "continuous":
            v = np.clip(rng.normal(0, 30, n), -100, 100)
            if col.missing:
                v[rng.random(n) < 0.05] = np.nan
            data[col.name] = v
        else:
            v = rng.integers(0, 121, n).astype(float if col.missing else np.int64)
            if col.missing:
                v[rng.random(n) < 0.05] = np.nan
            data[col.name] = v
    return pd.DataFrame(data)


def make_table(schema: Any, rows: int, chunk: int = 100_000) -> pd.DataFrame:
    """The generated table, built ``chunk`` rows at a time (row block ``s`` seeded with ``s``)."""
    parts = [make_chunk(schema, min(chunk, rows - s), s) for s in range(0, rows, chunk)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


class Phase:
    """Time one phase and read the peak RSS (VmHWM) it reached, after resetting the counter."""

    def __init__(self, name: str, record: dict[str, Any]) -> None:
        self.name, self.record = name, record

    def __enter__(self) -> Phase:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
            fh.write("5")
        self.record[f"{self.name}_base_bytes"] = _status("VmRSS")
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.record[f"{self.name}_s"] = time.perf_counter() - self.t
        self.record[f"{self.name}_peak_bytes"] = _status("VmHWM")


def measure(backend: str, rows: int, params: dict[str, Any]) -> dict[str, Any]:
    """One configuration (run in a child process)."""
    if backend in TORCH_BACKENDS:
        import torch

        torch.set_num_threads(1)
    from tabpriv import Synthesizer
    from tabpriv.backends import get_backend_class

    schema = make_schema()
    rec: dict[str, Any] = {"backend": backend, "rows": rows, "columns": len(schema), "params": params}
    t = time.perf_counter()
    df = make_table(schema, rows)
    rec["generate_s"] = time.perf_counter() - t
    rec["input_dataframe_bytes"] = int(df.memory_usage(deep=False).sum())
    with Phase("validate", rec):
        clean, _ = schema.validate(df)
    del clean
    synth = Synthesizer(
        backend=backend, epsilon=5.1, delta=1e-9, schema=schema, device="cpu", backend_params=params
    )
    with Phase("fit", rec):
        synth.fit(df)
    width = synth.transformer_.width_
    del df
    with Phase("sample", rec):
        out = synth.sample(rows)
    assert out.shape == (rows, 30), out.shape
    assert list(out.columns) == schema.names
    rec.update(
        onehot_width=width,
        encoded_matrix_bytes=rows * width * 4,
        output_dataframe_bytes=int(out.memory_usage(deep=False).sum()),
        sample_chunk_rows=synth.sample_chunk_rows(),
        streaming=bool(get_backend_class(backend).streaming),
        epsilon_spent=synth.privacy_report.epsilon,
        delta_spent=synth.privacy_report.delta,
        peak_hwm_bytes=_status("VmHWM"),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return rec


def _gib(x: float) -> str:
    return f"{x / 2**30:.2f}"


def write_md(records: list[dict[str, Any]]) -> None:
    """Rewrite ``load.md`` from the records."""
    lines = [
        "# Load benchmark: public `Synthesizer` API (30 columns, one-hot width 2,000)",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_load.py` (see the script docstring). Each row is",
        "one subprocess; peak = `VmHWM` of the phase (reset before it), base = RSS when the phase began,",
        "both in GiB. `fit` includes validation; `validate` is `Schema.validate` alone. Encoded matrix =",
        "rows × width × 4 B, the size the eager path materialised (not allocated by streaming backends).",
        "",
        "| backend | params | streaming | rows | encoded matrix | input df | validate s | validate peak "
        "| fit s | fit base | fit peak | sample s | sample base | sample peak | output df | when |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(records, key=lambda r: (r["backend"], r["rows"])):
        params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items()) or "defaults"
        lines.append(
            f"| {r['backend']} | {params} | {'yes' if r.get('streaming') else 'no'} | {r['rows']:,} | "
            f"{_gib(r['encoded_matrix_bytes'])} | "
            f"{_gib(r['input_dataframe_bytes'])} | {r['validate_s']:.1f} | "
            f"{_gib(r['validate_peak_bytes'])} | "
            f"{r['fit_s']:.1f} | {_gib(r['fit_base_bytes'])} | {_gib(r['fit_peak_bytes'])} | "
            f"{r['sample_s']:.1f} | {_gib(r['sample_base_bytes'])} | {_gib(r['sample_peak_bytes'])} | "
            f"{_gib(r['output_dataframe_bytes'])} | {r['when']} |"
        )
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["independent"])
    ap.add_argument("--rows", nargs="+", type=int, default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--params", default="{}", help="backend_params as JSON (same for every backend)")
    ap.add_argument("--merge", action="store_true", help="keep the other records of load.json")
    ap.add_argument("--child", nargs=2, metavar=("BACKEND", "ROWS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    params = json.loads(args.params)
    if args.child:
        rec = measure(args.child[0], int(args.child[1]), params)
        sys.stdout.write(json.dumps(rec) + "\n")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "load.json"
    records: list[dict[str, Any]] = json.loads(path.read_text()) if args.merge and path.exists() else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for backend in args.backends:
        for rows in args.rows:
            cmd = [sys.executable, __file__, "--child", backend, str(rows), "--params", args.params]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{backend} at {rows} rows failed (exit {proc.returncode})")
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            records = [r for r in records if (r.get("backend"), r.get("rows")) != (backend, rows)]
            records.append(rec)
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()
            tmp = path.with_suffix(".json.part")
            tmp.write_text(json.dumps(records, indent=2) + "\n")
            tmp.replace(path)
            write_md(records)


if __name__ == "__main__":
    main()
