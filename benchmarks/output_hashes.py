"""Fingerprints of every backend's seeded output, to show a refactor left the outputs bit-identical.

``python -m benchmarks.output_hashes [--out benchmarks/results/output_hashes.json] [--compare FILE]``

For each registered backend: a seeded fit (its ``quick_params``, ε = 5.1, δ = 1e-5, CPU, one torch
thread) on the first 2,000 rows of the bundled Adult sample, then ``sample(1000)``; the SHA-256 of the
sampled table (as CSV) and of the saved model's arrays. ``--compare`` exits 1 and lists the backends
whose fingerprints differ from an earlier file. The figures are fingerprints, not quality figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROWS_IN = 2_000
ROWS_OUT = 1_000
SEED = 0


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fingerprint(backend: str) -> dict[str, str]:
    """Seeded fit and sample of ``backend``; SHA-256 of the sampled CSV and of the saved arrays."""
    from safetensors.numpy import load

    import tabpriv
    from tabpriv.backends import get_backend_class
    from tabpriv.datasets import adult_schema, load_adult

    df = load_adult().head(ROWS_IN)
    cls = get_backend_class(backend)
    synth = tabpriv.Synthesizer(
        backend=backend,
        epsilon=5.1,
        delta=1e-5,
        schema=adult_schema(),
        device="cpu",
        random_state=SEED,
        backend_params=dict(cls.quick_params),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seeded-run and mode warnings are expected here
        synth.fit(df)
        out = synth.sample(ROWS_OUT)
    table = hashlib.sha256(out.to_csv(index=False).encode()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tabpriv"
        synth.save(path)
        arrays = load(path.read_bytes())
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(arrays[k].tobytes())
    return {"sample_sha256": table, "arrays_sha256": h.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.output_hashes", description=__doc__)
    p.add_argument("--out", default="benchmarks/results/output_hashes.json")
    p.add_argument("--compare", default=None, help="an earlier output file to compare with")
    a = p.parse_args(argv)
    import torch

    from tabpriv.backends import available_backends

    torch.set_num_threads(1)
    rows: dict[str, Any] = {name: fingerprint(name) for name in available_backends()}
    result = {"commit": _commit(), "rows_in": ROWS_IN, "rows_out": ROWS_OUT, "seed": SEED, "backends": rows}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out} (commit {result['commit']})")
    if a.compare is None:
        return 0
    old = json.loads(Path(a.compare).read_text())["backends"]
    changed = sorted(b for b in rows if old.get(b) != rows[b])
    for b in sorted(rows):
        print(f"{b:22s} {'CHANGED' if b in changed else 'identical'}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
