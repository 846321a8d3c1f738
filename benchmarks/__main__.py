"""``python -m benchmarks run --config benchmarks/config.toml [--quick]`` (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if not __package__:
    # Run as a path (``python benchmarks run ...``, ``python /path/to/repo/benchmarks run ...``):
    # sys.path[0] is then this folder, not the repository root, and ``from benchmarks import runner``
    # would find the stray top-level ``benchmarks`` package that opacus' wheel installs into
    # site-packages (benchmarks/README.md). The repository root goes first, as with ``-m``.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _positive(text: str) -> float:
    """A finite number of seconds > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0; got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Command line of the benchmark suite."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the benchmark grid")
    r.add_argument("--config", default="benchmarks/config.toml")
    r.add_argument("--quick", action="store_true", help="reduced grid (< 10 min on 2 CPU cores)")
    r.add_argument("--systems", nargs="*", default=None, help="override the config's systems")
    r.add_argument("--max-train-rows", type=int, default=None, help="seeded subsample of training rows")
    r.add_argument("--datasets", nargs="*", default=None, help="override the config's datasets")
    r.add_argument("--epsilons", nargs="*", type=float, default=None, help="override the config's ε list")
    r.add_argument("--seeds", nargs="*", type=int, default=None, help="override the config's seeds")
    r.add_argument(
        "--timeout-s", type=_positive, default=None, help="override the config's per-run time limit (s)"
    )
    r.add_argument(
        "--resume", action="store_true", help="skip runs already recorded in the grid's JSONL file"
    )
    t = sub.add_parser("tables", help="rebuild Markdown tables and plots from a results JSONL file")
    t.add_argument("jsonl")
    c = sub.add_parser("_child", help=argparse.SUPPRESS)
    c.add_argument("spec")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from benchmarks import runner

    if a.cmd == "_child":
        return runner.child(a.spec)
    if a.cmd == "tables":
        import json
        from pathlib import Path

        path = Path(a.jsonl)
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = list({runner._key(r): r for r in rows}.values())  # last record of a key wins
        for out in runner.write_outputs(rows, path.parent, path.stem):
            print(out)
        return 0
    jsonl = runner.run(
        a.config,
        quick=a.quick,
        only_systems=a.systems,
        max_train_rows=a.max_train_rows,
        datasets=a.datasets,
        epsilons=a.epsilons,
        seeds=a.seeds,
        resume=a.resume,
        timeout_s=a.timeout_s,
    )
    print(jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
