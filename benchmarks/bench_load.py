"""Load benchmark: a generated table with 30 mixed columns and a one-hot width of 2,000.

Usage::

    .venv/bin/python benchmarks/bench_load.py --mode batched --rows 1000000      # one measurement
    .venv/bin/python benchmarks/bench_load.py --mode synthesizer --rows 100000
    .venv/bin/python benchmarks/bench_load.py --all                               # the published set

Modes:

* ``synthesizer``: the public path, ``Synthesizer(backend="independent").fit(df).sample(n)``, which
  holds the whole DataFrame and the whole ``n x 2000`` float32 encoded matrix in memory (8 GB at
  1,000,000 rows), so it is run at sizes this shared machine can hold.
* ``batched``: 1,000,000 rows with memory bounded by batching, using only public pieces: the table is
  generated and encoded in chunks into a disk-backed (``np.memmap``) EncodedTable, ``IndependentBackend.fit``
  reads it column by column, and sampling + decoding run in chunks of ``--chunk`` rows.

Each measurement runs in its own subprocess; peak memory is sampled from ``/proc/self/status`` every
20 ms (``VmRSS``, and ``RssAnon`` = heap, i.e. without the page cache of the memmap file) and also read
from ``ru_maxrss``. Results are appended to ``benchmarks/results/load.json`` and the table
``benchmarks/results/load.md`` is rewritten. Timings on a shared 2-core CPU are noisy: compare rows of
the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_CAT_SIZES = [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30, 40, 50, 60, 100, 200, 400]


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


class PeakMemory:
    """Samples VmRSS and RssAnon of this process every ``interval`` seconds (Linux)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_anon = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> tuple[int, int]:
        rss = anon = 0
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
        return rss, anon

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, anon = self.read()
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        rss, anon = self.read()
        self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)


def run_synthesizer(rows: int, chunk: int) -> dict[str, Any]:
    from tabpriv import Synthesizer

    schema = make_schema()
    t = time.perf_counter()
    df = pd.concat(
        [make_chunk(schema, min(chunk, rows - s), s) for s in range(0, rows, chunk)], ignore_index=True
    )
    gen_s = time.perf_counter() - t
    df_bytes = int(df.memory_usage(deep=True).sum())
    synth = Synthesizer(backend="independent", epsilon=5.1, delta=1e-9, schema=schema)
    with PeakMemory() as m_fit:
        t = time.perf_counter()
        synth.fit(df)
        fit_s = time.perf_counter() - t
    with PeakMemory() as m_sample:
        t = time.perf_counter()
        out = synth.sample(rows)
        sample_s = time.perf_counter() - t
    assert out.shape == (rows, 30)
    return {
        "generate_s": gen_s, "input_dataframe_bytes": df_bytes, "fit_s": fit_s, "sample_s": sample_s,
        "fit_peak_rss": m_fit.peak_rss, "fit_peak_anon": m_fit.peak_anon,
        "sample_peak_rss": m_sample.peak_rss, "sample_peak_anon": m_sample.peak_anon,
        "epsilon_spent": synth.privacy_report.epsilon,
    }  # fmt: skip


def run_batched(rows: int, chunk: int, categorical: str = "argmax") -> dict[str, Any]:
    from tabpriv.backends.base import FitContext
    from tabpriv.backends.independent import IndependentBackend
    from tabpriv.budget import PrivacyBudget, PrivacyLedger
    from tabpriv.transformers import TableTransformer
    from tabpriv.transformers.encoded import EncodedTable

    schema = make_schema()
    tt = TableTransformer(schema).fit()
    width = tt.width_
    with tempfile.TemporaryDirectory(dir=os.environ.get("TABPRIV_BENCH_TMP")) as tmp:
        mm = np.lib.format.open_memmap(
            Path(tmp) / "enc.npy", mode="w+", dtype=np.float32, shape=(rows, width)
        )
        with PeakMemory() as m_enc:
            t = time.perf_counter()
            for s in range(0, rows, chunk):
                n = min(chunk, rows - s)
                mm[s : s + n] = tt.transform(make_chunk(schema, n, s)).data
            mm.flush()
            enc_s = time.perf_counter() - t
        table = EncodedTable(mm, tt.spans_)
        ledger = PrivacyLedger(PrivacyBudget(5.1, 1e-9))
        backend = IndependentBackend()
        seed = int.from_bytes(os.urandom(8), "little")
        with PeakMemory() as m_fit:
            t = time.perf_counter()
            backend.fit(table, ledger, FitContext(device="cpu", seed=seed, seeded=False))
            fit_s = time.perf_counter() - t
        del table, mm
    with PeakMemory() as m_sample:
        t = time.perf_counter()
        got = 0
        rng = np.random.default_rng()
        for s in range(0, rows, chunk):
            n = min(chunk, rows - s)
            part = tt.inverse_transform(
                backend.sample(n, int(rng.integers(2**63 - 1))), categorical=categorical, rng=rng
            )
            got += len(part)
        sample_s = time.perf_counter() - t
    assert got == rows
    return {
        "generate_and_encode_s": enc_s, "encode_peak_rss": m_enc.peak_rss,
        "encode_peak_anon": m_enc.peak_anon,
        "fit_s": fit_s, "fit_peak_rss": m_fit.peak_rss, "fit_peak_anon": m_fit.peak_anon,
        "sample_s": sample_s, "sample_peak_rss": m_sample.peak_rss, "sample_peak_anon": m_sample.peak_anon,
        "epsilon_spent": ledger.epsilon_spent, "encoded_matrix_bytes": rows * width * 4,
    }  # fmt: skip


def measure(mode: str, rows: int, chunk: int, categorical: str = "argmax") -> dict[str, Any]:
    if mode == "batched":
        res = run_batched(rows, chunk, categorical)
    else:
        res = run_synthesizer(rows, chunk)
        categorical = "sample"  # the Synthesizer.sample default
    res.update(
        categorical=categorical,
        mode=mode, rows=rows, columns=30, onehot_width=2000, chunk=chunk, backend="independent",
        ru_maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    return res


def _gb(x: float) -> str:
    return f"{x / 2**30:.2f}"


def write_md(records: list[dict[str, Any]]) -> None:
    lines = [
        "# Load benchmark (independent backend; 30 columns, one-hot width 2000)",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_load.py --all` (see the script docstring).",
        "Peak memory per phase in GiB: RSS (incl. page cache of a memmap) / anon (heap only).",
        "",
        "| mode | decode | rows | chunk | encode s | fit s | fit peak RSS/anon | sample s "
        "| sample peak RSS/anon | ru_maxrss | when |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        enc = r.get("generate_and_encode_s", r.get("generate_s", float("nan")))
        lines.append(
            f"| {r['mode']} | {r.get('categorical', 'argmax' if r['mode'] == 'batched' else 'sample')} "
            f"| {r['rows']:,} | {r['chunk']:,} | {enc:.1f} | {r['fit_s']:.1f} | "
            f"{_gb(r['fit_peak_rss'])}/{_gb(r['fit_peak_anon'])} | {r['sample_s']:.1f} | "
            f"{_gb(r['sample_peak_rss'])}/{_gb(r['sample_peak_anon'])} | {_gb(r['ru_maxrss'])} "
            f"| {r['when']} |"
        )
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["batched", "synthesizer"], default="batched")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument(
        "--categorical", choices=["argmax", "sample"], default="argmax", help="decoding in batched mode"
    )
    ap.add_argument("--all", action="store_true", help="run the published set, each in a subprocess")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.child:
        sys.stdout.write(json.dumps(measure(args.mode, args.rows, args.chunk, args.categorical)) + "\n")
        return
    runs = (
        [
            ("synthesizer", 20_000, "sample"),
            ("synthesizer", 50_000, "sample"),
            ("batched", 1_000_000, "argmax"),
        ]
        if args.all
        else [(args.mode, args.rows, args.categorical)]
    )
    path = RESULTS / "load.json"
    records = json.loads(path.read_text()) if path.exists() else []
    for mode, rows, categorical in runs:
        cmd = [sys.executable, __file__, "--child", "--mode", mode, "--rows", str(rows), "--chunk",
               str(args.chunk), "--categorical", categorical]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{mode} {rows} failed")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        records.append(rec)
        sys.stdout.write(json.dumps(rec) + "\n")
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(records, indent=2))
        tmp.replace(path)
        write_md(records)


if __name__ == "__main__":
    main()
