"""Benchmark runner: every system on every dataset, same evaluation, same ε, same hold-out.

``python -m benchmarks run --config benchmarks/config.toml [--quick]``

For each (dataset, system, ε, seed) one fit + sample runs in its **own subprocess** (so wall-clock
time and peak memory, ``ru_maxrss``, belong to that run alone); the synthetic table comes back as CSV
and the parent scores it with :func:`tabpriv.evaluation.evaluate` against the same training table and
hold-out for every system. The dataset's ``target`` (set in the config; a public choice of the
analysis) is the label of the evaluation's utility models for every system; a ``tabpriv:<backend>``
whose constructor takes a ``target`` parameter (``aim``, ``mst``, ``pgd``, ``dpsgd-vae`` and
``dp2-vae`` at present) also gets it as a backend parameter (:func:`public_backend_params`, recorded
with the run), while the other backends and the peers are fitted without it. Results go to
``benchmarks/results/<name>.jsonl`` (one JSON object a run, appended), ``<name>_<dataset>.md`` (mean ±
std over seeds) and ``<name>_<dataset>.png`` (ε on x, LR AUC and 2-way TVD on y, one line per system).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SMARTNOISE_PY = ROOT / ".venv-smartnoise" / "bin" / "python"
SMARTNOISE_RUNNER = ROOT / "benchmarks" / "peers" / "smartnoise_runner.py"
DPMM_PY = ROOT / ".venv-dpmm" / "bin" / "python"
DPMM_RUNNER = ROOT / "benchmarks" / "peers" / "dpmm_runner.py"
OPENDP_PY = ROOT / ".venv-opendp-synth" / "bin" / "python"
OPENDP_RUNNER = ROOT / "benchmarks" / "peers" / "opendp_runner.py"
# Peer libraries run in their own venvs: system prefix -> (synthesizers, setup script).
PEERS: dict[str, tuple[tuple[str, ...], str]] = {
    "smartnoise": (("mst", "aim"), "setup_smartnoise.sh"),
    "dpmm": (("mst", "aim", "privbayes"), "setup_dpmm.sh"),
    "opendp": (("mst", "aim"), "setup_opendp_synth.sh"),
}
log = logging.getLogger("benchmarks")


# -- datasets ---------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """A benchmark table: training rows, hold-out rows, the declared schema and the target."""

    name: str
    train: pd.DataFrame
    holdout: pd.DataFrame
    schema: Any
    schema_path: Path
    target: str
    split: dict[str, Any]


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (ROOT / p).resolve()


def load_dataset(name: str, spec: dict[str, Any], max_train_rows: int | None = None) -> Dataset:
    """Load one dataset of the config (Adult's own split, or a seeded 80/20 split of a CSV)."""
    from tabpriv.schema import Schema

    if spec.get("loader") == "acs":
        schema_path = ROOT / "tabpriv" / "acs_schemas" / f"{spec['task']}.schema.json"
    else:
        schema_path = _resolve(spec["schema"])
    schema = Schema.load(schema_path)
    if spec.get("loader") == "adult":
        from tabpriv.datasets import load_adult

        train, holdout = load_adult("train"), load_adult("test")
        split: dict[str, Any] = {"kind": "given", "train": "adult.data", "holdout": "adult.test"}
    else:
        if spec.get("loader") == "acs":
            from tabpriv.acs import acs

            df, schema = acs(
                spec["task"],
                state=spec.get("state", "CA"),
                year=int(spec.get("year", 2018)),
                root_dir=_resolve(spec["root_dir"]),
                download=bool(spec.get("download", False)),
            )
        else:
            path = _resolve(spec["path"])
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing (see ../shared/datasets/README.md)")
            df = pd.read_csv(path)
        seed = int(spec.get("split_seed", 0))
        frac = float(spec.get("holdout_fraction", 0.2))
        perm = np.random.default_rng(seed).permutation(len(df))
        n_hold = round(frac * len(df))
        holdout = df.iloc[np.sort(perm[:n_hold])].reset_index(drop=True)
        train = df.iloc[np.sort(perm[n_hold:])].reset_index(drop=True)
        split = {
            "kind": "seeded",
            "split_seed": seed,
            "holdout_fraction": frac,
            "rng": "numpy.random.default_rng(split_seed).permutation(n); first share = hold-out",
        }
    # Fixed, data-independent rule: numbers clipped into the declared bounds (counts recorded).
    train, clip_train = schema.validate(train, clip=True)
    holdout, clip_hold = schema.validate(holdout, clip=True)
    split["clipped_train"] = dict(clip_train.clipped)
    split["clipped_holdout"] = dict(clip_hold.clipped)
    if max_train_rows is not None and len(train) > max_train_rows:
        idx = np.sort(np.random.default_rng(12345).choice(len(train), max_train_rows, replace=False))
        train = train.iloc[idx].reset_index(drop=True)
        split["train_subsample"] = {"rows": max_train_rows, "seed": 12345}
    split["n_train"], split["n_holdout"] = len(train), len(holdout)
    return Dataset(name, train, holdout, schema, schema_path, spec["target"], split)


# -- systems ----------------------------------------------------------------------------------------
def expand_systems(names: list[str]) -> list[str]:
    """``tabpriv:*`` becomes every registered backend (``tabpriv:<name>``)."""
    from tabpriv.backends import available_backends

    out: list[str] = []
    for s in names:
        if s == "tabpriv:*":
            out += [f"tabpriv:{b}" for b in available_backends()]
        else:
            out.append(s)
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class PeerVariant:
    """A peer system parsed from its name: ``<library>-<synth>[-iid][-replace-one]``."""

    library: str  # "smartnoise", "dpmm" or "opendp" (a key of PEERS)
    synth: str  # "mst", "aim", "privbayes"
    adjacency: str  # "add-remove" (the peer's own accounting) or "replace-one"
    sample_method: str  # "round" (mbi's default randomized rounding) or "sample" (i.i.d., "-iid")


def peer_variant(system: str) -> PeerVariant | None:
    """Parse a peer system name; None when ``system`` names no known peer.

    ``<library>-<synth>`` runs the synthesizer at ε as its library accounts it (add/remove-one
    neighbours); ``-replace-one`` at the ε' (or, for OpenDP, the privacy unit) that makes it (ε, δ)-DP
    under replace-one, the neighbouring relation of every tabpriv guarantee; ``-iid`` samples the
    synthetic rows i.i.d. from the fitted model instead of by mbi's default rounding
    (``synthetic_data(method='round')``). See ``benchmarks/peers/*_runner.py``.
    """
    library, _, rest = system.partition("-")
    if library not in PEERS or not rest:
        return None
    adjacency, sample_method = "add-remove", "round"
    if rest.endswith("-replace-one"):
        rest, adjacency = rest.removesuffix("-replace-one"), "replace-one"
    if rest.endswith("-iid"):
        rest, sample_method = rest.removesuffix("-iid"), "sample"
    if rest not in PEERS[library][0]:
        return None
    return PeerVariant(library, rest, adjacency, sample_method)


def smartnoise_variant(system: str) -> tuple[str, str]:
    """``smartnoise-<synth>[-iid][-replace-one]`` → (synth, adjacency the peer is calibrated for).

    ``smartnoise-mst`` runs MST at ε as smartnoise accounts it (add/remove-one neighbours);
    ``smartnoise-mst-replace-one`` at the smaller ε' that makes it (ε, δ)-DP under replace-one, the
    neighbouring relation of every tabpriv guarantee (see ``peers/smartnoise_runner.py``).
    """
    v = peer_variant(system)
    if v is None or v.library != "smartnoise":
        raise ValueError(
            f"{system!r} is not a smartnoise peer (smartnoise-mst, smartnoise-aim-replace-one, ...)"
        )
    return v.synth, v.adjacency


def _peer_python(library: str) -> tuple[Path, Path]:
    """Interpreter of the peer's venv and its runner script (looked up at call time: tests patch them)."""
    return {
        "smartnoise": (SMARTNOISE_PY, SMARTNOISE_RUNNER),
        "dpmm": (DPMM_PY, DPMM_RUNNER),
        "opendp": (OPENDP_PY, OPENDP_RUNNER),
    }[library]


def peak_rss_mb() -> float:
    """Peak resident memory of *this process image* in MB.

    ``ru_maxrss`` survives ``execve`` on Linux, so a child spawned by a large parent would report the
    parent's size; ``VmHWM`` belongs to the new address space. Falls back to ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child_tabpriv(args: dict[str, Any]) -> dict[str, Any]:
    """Body of the subprocess that fits and samples one tabpriv backend (see ``child`` below)."""
    import torch

    torch.set_num_threads(int(os.environ.get("TABPRIV_BENCH_THREADS", "1")))
    from tabpriv import Synthesizer
    from tabpriv.io import read_table, write_table
    from tabpriv.schema import Schema

    schema = Schema.load(args["schema"])
    train = read_table(args["train"], schema)
    base_mb = peak_rss_mb()
    synth = Synthesizer(
        backend=args["backend"],
        epsilon=args["epsilon"],
        delta=args["delta"],
        schema=schema,
        random_state=args["seed"],
        device=args.get("device", "cpu"),
        backend_params=args.get("backend_params") or None,
    )
    t0 = time.perf_counter()
    synth.fit(train)
    t1 = time.perf_counter()
    out = synth.sample(args["n"])
    t2 = time.perf_counter()
    write_table(out, args["output"])
    report = synth.privacy_report
    rep = report.to_dict() if hasattr(report, "to_dict") else {"text": str(report)}
    return {
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "baseline_rss_mb": base_mb,
        "peak_rss_mb": peak_rss_mb(),
        "device": str(getattr(synth, "device_", args.get("device", "cpu"))),
        "backend_params": args.get("backend_params") or {},
        "backend_timings": getattr(synth.backend_, "timings_", None),
        "load_avg_1min_after": os.getloadavg()[0],
        "privacy_report": rep,
    }


def child(spec_path: str) -> int:
    """Entry point of the per-run subprocess: reads a JSON spec, writes a JSON result beside it."""
    args = json.loads(Path(spec_path).read_text())
    res = _child_tabpriv(args)
    Path(args["meta"]).write_text(json.dumps(res, default=str))
    return 0


def public_backend_params(backend: str, ds: Dataset) -> dict[str, Any]:
    """Public parameters the grid gives a backend: the dataset's target to backends that take one.

    Read off the backend's constructor: every backend with a ``target`` parameter gets the dataset's
    target (``aim``, ``mst`` and ``pgd`` weight the marginals that touch it, ``dpsgd-vae`` and
    ``dp2-vae`` condition their decoder on a categorical one; the benchmark's classification target
    is a public choice of the analysis, stated in the release's report); every other backend gets no
    parameters.
    """
    import inspect

    from tabpriv.backends import get_backend_class

    params = inspect.signature(get_backend_class(backend).__init__).parameters
    return {"target": ds.target} if "target" in params else {}


def run_system(
    system: str, ds: Dataset, eps: float, delta: float, seed: int, work: Path, timeout_s: float
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Fit + sample one system in a subprocess; return the synthetic table and run facts."""
    from tabpriv.io import read_table, write_table

    tag = f"{ds.name}_{system.replace(':', '-')}_e{eps}_s{seed}"
    train_csv = work / f"{ds.name}_train.csv"
    if not train_csv.exists():
        write_table(ds.train, train_csv)
    out_csv, meta = work / f"{tag}.synth.csv", work / f"{tag}.meta.json"
    if system == "real":
        return ds.train.copy(), {
            "fit_s": 0.0,
            "sample_s": 0.0,
            "peak_rss_mb": None,
            "device": "cpu",
            "note": "training table itself (ceiling)",
        }
    if system.startswith("tabpriv:"):
        backend = system.split(":", 1)[1]
        spec = child_spec(
            ds, backend, public_backend_params(backend, ds), eps, delta, seed, train_csv, out_csv, meta
        )
        spec_path = work / f"{tag}.spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "benchmarks", "_child", str(spec_path)]
    elif (peer := peer_variant(system)) is not None:
        py, script = _peer_python(peer.library)
        if not py.exists():
            return None, {"skipped": f"{py} missing; run benchmarks/peers/{PEERS[peer.library][1]}"}
        cmd = [
            str(py),
            str(script),
            "--adjacency",
            peer.adjacency,
            "--sample-method",
            peer.sample_method,
            "--synth",
            peer.synth,
            "--input",
            str(train_csv),
            "--schema",
            str(ds.schema_path),
            "--output",
            str(out_csv),
            "--epsilon",
            str(eps),
            "--delta",
            str(delta),
            "--seed",
            str(seed),
            "--n",
            str(len(ds.train)),
            "--meta",
            str(meta),
        ]
    else:
        return None, {"skipped": f"unknown system {system!r}"}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return None, {"failed": f"timeout after {timeout_s} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_csv.exists():
        return None, {"failed": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    facts = json.loads(meta.read_text())
    facts["wall_s"] = wall
    facts.setdefault("device", "cpu")
    return read_table(out_csv, ds.schema), facts


# -- evaluation -------------------------------------------------------------------------------------
def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """Pick the headline figures out of ``EvaluationReport.to_dict()`` (missing ones are None).

    LR figures: logistic regression trained on synthetic (TSTR) or real (TRTR) rows, tested on the real
    hold-out. MIA figures: the strongest of the suite's attacks (largest AUC, largest TPR at 1% FPR).
    """
    lr = _get(report, "utility", "models", "logistic_regression") or {}
    attacks = _get(report, "membership", "attacks") or {}
    aucs: dict[str, float] = {}
    tprs: dict[str, float] = {}
    for name, att in attacks.items():
        if isinstance(att, dict) and isinstance(att.get("auc"), int | float):
            aucs[name] = float(att["auc"])
        if isinstance(att, dict) and isinstance(att.get("tpr_at_fpr_1pct"), int | float):
            tprs[name] = float(att["tpr_at_fpr_1pct"])
    return {
        "tvd_1way": _get(report, "marginals", "one_way", "mean"),
        "tvd_2way": _get(report, "marginals", "two_way", "mean"),
        "tvd_3way": _get(report, "marginals", "three_way", "mean"),
        "tvd_2way_holdout_baseline": _get(report, "marginals_holdout_baseline", "two_way", "mean"),
        "lr_auc_tstr": _get(lr, "synthetic", "roc_auc"),
        "lr_auc_trtr": _get(lr, "real", "roc_auc"),
        "lr_acc_tstr": _get(lr, "synthetic", "accuracy"),
        "lr_acc_trtr": _get(lr, "real", "accuracy"),
        "mia_auc": max(aucs.values()) if aucs else None,
        "mia_auc_attack": max(aucs, key=aucs.__getitem__) if aucs else None,
        "mia_tpr_at_1pct_fpr": max(tprs.values()) if tprs else None,
    }


def score(ds: Dataset, synthetic: pd.DataFrame, seed: int, bins: int, privacy: Any) -> dict[str, Any]:
    """Evaluate a synthetic table with tabpriv's evaluation suite; return the report dict."""
    try:
        from tabpriv.evaluation import evaluate
    except ImportError:  # the package __init__ may not export it yet
        from tabpriv.evaluation.core import evaluate
    rep = evaluate(
        ds.train,
        synthetic,
        ds.schema,
        holdout=ds.holdout,
        target=ds.target,
        bins=bins,
        random_state=seed,
        privacy_report=privacy,
        sdmetrics=False,
    )
    out: dict[str, Any] = rep.to_dict()
    return out


def child_spec(
    ds: Dataset,
    backend: str,
    params: dict[str, Any],
    eps: float,
    delta: float,
    seed: int,
    train_csv: Path,
    out_csv: Path,
    meta: Path,
) -> dict[str, Any]:
    """The spec a ``python -m benchmarks _child`` process reads: one tabpriv fit + sample on the CPU."""
    return {
        "backend": backend,
        "backend_params": params,
        "epsilon": eps,
        "delta": delta,
        "seed": seed,
        "schema": str(ds.schema_path),
        "train": str(train_csv),
        "output": str(out_csv),
        "n": len(ds.train),
        "meta": str(meta),
        "device": "cpu",
    }


def _epsilon_spent(priv: Any) -> Any:
    if not isinstance(priv, dict):
        return None
    for path in (("epsilon",), ("epsilon_spent",)):
        v = _get(priv, *path)
        if isinstance(v, int | float):
            return v
    return None


# -- tables and plots -------------------------------------------------------------------------------
METRICS = [
    ("tvd_1way", "1-way TVD ↓"),
    ("tvd_2way", "2-way TVD ↓"),
    ("tvd_3way", "3-way TVD ↓"),
    ("lr_auc_tstr", "LR AUC (TSTR) ↑"),
    ("lr_acc_tstr", "LR acc (TSTR) ↑"),
    ("mia_auc", "MIA AUC"),
    ("mia_tpr_at_1pct_fpr", "MIA TPR@1%FPR"),
    ("epsilon_spent", "ε spent"),
    ("fit_s", "fit s"),
    ("sample_s", "sample s"),
    ("peak_rss_mb", "peak MB"),
]


def _fmt(values: list[Any]) -> str:
    v = [float(x) for x in values if isinstance(x, int | float) and math.isfinite(x)]
    if not v:
        return "–"
    m = float(np.mean(v))
    prec = 3 if abs(m) < 10 else 1
    if len(v) == 1:
        return f"{m:.{prec}f}"
    return f"{m:.{prec}f} ± {float(np.std(v, ddof=1)):.{prec}f}"


def _finished(row: dict[str, Any]) -> bool:
    """A run that produced figures (neither skipped nor failed)."""
    return "skipped" not in row and "failed" not in row


def _not_end_to_end(rows: list[dict[str, Any]]) -> bool:
    """Whether any of ``rows`` carries a guarantee that is not (ε, δ)-DP end to end (marked †)."""
    return any(r.get("guarantee") not in (None, "dp", "none") for r in rows)


def markdown_table(rows: list[dict[str, Any]], dataset: str) -> str:
    """Mean ± std (over seeds) per (system, ε) of one dataset."""
    rows = [r for r in rows if r["dataset"] == dataset]
    head = "| system | ε | seeds | " + " | ".join(lbl for _, lbl in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    keys = sorted({(r["system"], r["epsilon"]) for r in rows}, key=lambda k: (k[0], k[1] or 0.0))
    dagger = False
    for system, eps in keys:
        grp = [r for r in rows if r["system"] == system and r["epsilon"] == eps]
        ok = [r for r in grp if _finished(r)]
        if not ok:
            why = str(grp[-1].get("skipped") or grp[-1].get("failed") or "").strip().splitlines()[-1:]
            lines.append(
                f"| {system} | {eps} | 0 | "
                + " | ".join("–" for _ in METRICS)
                + f" |  <!-- {' '.join(why)[:160]} -->"
            )
            continue
        cells = [_fmt([r.get(k) for r in ok]) for k, _ in METRICS]
        eps_txt = "no DP" if eps is None else eps
        label = system
        if _not_end_to_end(ok):
            label += " †"
            dagger = True
        lines.append(f"| {label} | {eps_txt} | {len(ok)} | " + " | ".join(cells) + " |")
    if dagger:
        lines.append(
            "\n† not (ε, δ)-DP end to end: its guarantee does not cover training (see the backend's "
            "privacy report); ε is the nominal figure."
        )
    return "\n".join(lines) + "\n"


def speed_table(rows: list[dict[str, Any]], dataset: str) -> str:
    """Median fit + sample seconds over seeds per (system, ε), as a ratio to smartnoise MST's median
    at the same ε in the same run (the issue's speed figure; ratios, because this CPU is shared)."""
    rows = [r for r in rows if r["dataset"] == dataset and isinstance(r.get("fit_s"), int | float)]
    med: dict[tuple[str, Any], tuple[float, int]] = {}
    for system, eps in {(r["system"], r["epsilon"]) for r in rows if r["system"] != "real"}:
        t = [r["fit_s"] + r["sample_s"] for r in rows if r["system"] == system and r["epsilon"] == eps]
        med[(system, eps)] = (float(np.median(t)), len(t))
    lines = ["| system | ε | runs | median fit+sample s | ratio to smartnoise-mst |", "|---|---|---|---|---|"]
    for (system, eps), (m, k) in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ref = med.get(("smartnoise-mst", eps))
        ratio = f"{m / ref[0]:.3f}" if ref and ref[0] > 0 else "–"
        lines.append(f"| {system} | {eps} | {k} | {m:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def summary_table(rows: list[dict[str, Any]], dataset: str) -> str:
    """One line per system: "2-way TVD / LR AUC" (mean ± std over seeds) per ε, then fit+sample at
    ε = 5.1 as a ratio of medians to smartnoise MST's, and the median peak MB (the READMEs' summary).

    A cell with fewer than 3 finished seeds says how many; one where every run failed says why in a
    word ("timeout" or "failed").
    """
    rows = [r for r in rows if r["dataset"] == dataset]

    def median(system: str, eps: Any, value: Any) -> float | None:
        v = [value(r) for r in rows if _finished(r) and r["system"] == system and r["epsilon"] == eps]
        v = [x for x in v if x is not None]
        return float(np.median(v)) if v else None

    def seconds(r: dict[str, Any]) -> float | None:
        fit, sample = r.get("fit_s"), r.get("sample_s")
        if isinstance(fit, int | float) and isinstance(sample, int | float):
            return float(fit) + float(sample)
        return None

    def peak(r: dict[str, Any]) -> float | None:
        v = r.get("peak_rss_mb")
        return float(v) if isinstance(v, int | float) else None

    eps_list = sorted({r["epsilon"] for r in rows if r["epsilon"] is not None})
    ref_eps = 5.1 if 5.1 in eps_list else (eps_list[len(eps_list) // 2] if eps_list else None)
    lines = [
        "| system | "
        + " | ".join(f"ε = {e:g}" for e in eps_list)
        + f" | fit+sample vs MST (ε = {ref_eps}, medians) | peak MB (ε = {ref_eps}) |",
        "|" + "---|" * (len(eps_list) + 3),
    ]
    ref = median("smartnoise-mst", ref_eps, seconds)
    systems = sorted(
        {r["system"] for r in rows}, key=lambda s: (s != "real", not s.startswith("smartnoise"), s)
    )
    for system in systems:
        grp = [r for r in rows if r["system"] == system]
        if system == "real":
            good = [r for r in grp if _finished(r)]
            cell = f"{_fmt([r.get('tvd_2way') for r in good])} / {_fmt([r.get('lr_auc_tstr') for r in good])}"
            lines.append("| real (no DP) | " + " | ".join([cell] + [""] * (len(eps_list) - 1)) + " | – | – |")
            continue
        cells = []
        for e in eps_list:
            g = [r for r in grp if r["epsilon"] == e]
            good = [r for r in g if _finished(r)]
            if good:
                n = f" ({len(good)} seed{'s' if len(good) != 1 else ''})" if len(good) < 3 else ""
                tvd, auc = _fmt([r.get("tvd_2way") for r in good]), _fmt([r.get("lr_auc_tstr") for r in good])
                cells.append(f"{tvd} / {auc}{n}")
            elif g:
                cells.append("timeout" if "timeout" in str(g[-1].get("failed", "")) else "failed")
            else:
                cells.append("–")
        t, mb = median(system, ref_eps, seconds), median(system, ref_eps, peak)
        ratio = f"{t / ref:.2f}" if t is not None and ref else "–"
        dagger = " †" if _not_end_to_end(grp) else ""
        mb_txt = f"{mb:.0f}" if mb is not None else "–"
        lines.append(f"| {system}{dagger} | " + " | ".join(cells) + f" | {ratio} | {mb_txt} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], dataset: str, path: Path) -> None:
    """Privacy–utility PNG: ε on x; LR AUC (TSTR) and 2-way TVD on y; one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["dataset"] == dataset and _finished(r)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system in sorted({r["system"] for r in rows}):
        grp = [r for r in rows if r["system"] == system]
        if system == "real":  # no ε: the ceiling, drawn as a horizontal line
            for ax, key in zip(axes, ("lr_auc_tstr", "tvd_2way"), strict=True):
                vals = [r[key] for r in grp if r.get(key) is not None]
                if vals:
                    ax.axhline(float(np.mean(vals)), color="k", ls="--", lw=1, label="real (no DP)")
            continue
        eps = sorted({r["epsilon"] for r in grp})
        for ax, key in zip(axes, ("lr_auc_tstr", "tvd_2way"), strict=True):
            ys = [[r[key] for r in grp if r["epsilon"] == e and r.get(key) is not None] for e in eps]
            xs = [e for e, y in zip(eps, ys, strict=True) if y]
            if not xs:
                continue
            m = [float(np.mean(y)) for y in ys if y]
            s = [float(np.std(y)) for y in ys if y]
            ax.errorbar(xs, m, yerr=s, marker="o", capsize=3, label=system)
    axes[0].set(xlabel="ε", ylabel="LR AUC (train synthetic, test real)", title=dataset)
    axes[1].set(xlabel="ε", ylabel="mean 2-way TVD", title=dataset)
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    if rows:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(rows: list[dict[str, Any]], results: Path, name: str) -> list[Path]:
    """Markdown table and PNG per dataset; returns the paths written."""
    paths = []
    for dataset in sorted({r["dataset"] for r in rows}):
        md = results / f"{name}_{dataset}.md"
        md.write_text(
            f"### {dataset}\n\n"
            + markdown_table(rows, dataset)
            + f"\n#### {dataset}: speed\n\n"
            + speed_table(rows, dataset)
            + f"\n#### {dataset}: summary (2-way TVD ↓ / LR AUC ↑, mean ± std over seeds)\n\n"
            + summary_table(rows, dataset)
        )
        png = results / f"{name}_{dataset}.png"
        plot(rows, dataset, png)
        paths += [md, png]
    return paths


# -- main loop --------------------------------------------------------------------------------------
def _key(row: dict[str, Any]) -> tuple[str, str, Any, Any]:
    return (row["dataset"], row["system"], row.get("epsilon"), row.get("seed"))


def completed_rows(jsonl: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run of the same grid that finished (no ``failed``/``skipped``).

    Used by ``--resume``: a grid too long for one sitting is run in pieces, and a later piece skips
    every (dataset, system, ε, seed) already measured. The last record of a key wins.
    """
    if not jsonl.exists():
        return []
    latest: dict[tuple[str, str, Any, Any], dict[str, Any]] = {}
    for line in jsonl.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[_key(row)] = row
    return [r for r in latest.values() if _finished(r)]


def git_commit() -> str | None:
    """Commit of the code that ran (recorded with every row), or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def plan(grid: dict[str, Any], systems: list[str]) -> list[tuple[str, str, float | None, int]]:
    """The runs of a grid, seed-major: every system at every ε for seed 0 before seed 1, so that an
    interrupted grid still holds complete comparisons."""
    out: list[tuple[str, str, float | None, int]] = []
    for dname in grid["datasets"]:
        for seed in grid["seeds"]:
            for eps in grid["epsilons"]:
                out += [(dname, s, eps, seed) for s in systems if s != "real"]
            if "real" in systems:
                out.append((dname, "real", None, seed))
    return out


def timeout_for(system: str, grid: dict[str, Any]) -> float:
    """Per-run time limit of ``system``: the first ``[run].timeouts`` pattern it matches, else ``timeout_s``.

    ``timeouts`` maps shell-style patterns (``fnmatch``) to seconds, e.g. ``{"*-aim*" = 1200}``, so the
    slow peers can get a shorter limit than the rest of the grid; a run past its limit is recorded as
    ``failed: timeout after N s``.
    """
    import fnmatch

    for pattern, seconds in (grid.get("timeouts") or {}).items():
        if fnmatch.fnmatchcase(system, pattern):
            return float(seconds)
    return float(grid.get("timeout_s", 3600))


def run(
    config_path: str,
    quick: bool = False,
    only_systems: list[str] | None = None,
    max_train_rows: int | None = None,
    *,
    datasets: list[str] | None = None,
    epsilons: list[float] | None = None,
    seeds: list[int] | None = None,
    resume: bool = False,
    timeout_s: float | None = None,
) -> Path:
    """Run the grid of ``config_path`` (``[quick]`` overrides when ``quick``); return the JSONL path.

    ``datasets``/``epsilons``/``seeds`` narrow the grid; ``resume`` skips runs already recorded in
    the grid's JSONL file and rebuilds the tables from all of its rows; ``timeout_s`` replaces the
    config's per-run time limit (a run past it is recorded as failed, saying so).
    """
    cfg = tomllib.loads(Path(config_path).read_text())
    grid = dict(cfg["run"])
    if quick:
        grid.update(cfg.get("quick", {}))
    for key, val in (("datasets", datasets), ("epsilons", epsilons), ("seeds", seeds)):
        if val:
            grid[key] = list(val)
    if timeout_s is not None:
        grid["timeout_s"] = float(timeout_s)
        grid.pop("timeouts", None)  # --timeout-s replaces every per-run limit
    systems = expand_systems(only_systems or grid["systems"])
    results = _resolve(grid.get("results_dir", "benchmarks/results"))
    results.mkdir(parents=True, exist_ok=True)
    work = results / "tmp" / grid["name"]  # synthetic CSVs and full reports (git-ignored)
    work.mkdir(parents=True, exist_ok=True)
    jsonl = results / f"{grid['name']}.jsonl"
    previous = completed_rows(jsonl) if resume else []
    done = {_key(r) for r in previous}
    rows: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    host = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": git_commit(),
    }
    todo = [t for t in plan(grid, systems) if (t[0], t[1], t[2], t[3]) not in done]
    log.info("%d runs to do (%d already recorded)", len(todo), len(done))
    loaded: dict[str, Dataset] = {}
    for i, (dname, system, eps, seed) in enumerate(todo, 1):
        if dname not in loaded:
            loaded.clear()  # one dataset in memory at a time
            ds = load_dataset(dname, cfg["datasets"][dname], max_train_rows or grid.get("max_train_rows"))
            log.info("dataset %s: %d train, %d hold-out", dname, len(ds.train), len(ds.holdout))
            from tabpriv.io import write_table

            write_table(ds.train, work / f"{dname}_train.csv")  # fresh each run (subsampling may differ)
            loaded[dname] = ds
        ds = loaded[dname]
        # A dataset may set its own delta (tabpriv requires delta < 1/n for n training rows).
        delta = float(cfg["datasets"][dname].get("delta", grid["delta"]))
        t0 = time.perf_counter()
        row: dict[str, Any] = {
            "run": grid["name"],
            "started": started,
            "dataset": dname,
            "system": system,
            "epsilon": eps,
            "delta": None if eps is None else delta,
            "seed": seed,
            "split": ds.split,
            "host": host,
            "command": " ".join(sys.argv),
        }
        synth, facts = run_system(system, ds, eps or 0.0, delta, seed, work, timeout_for(system, grid))
        # The run's facts never relabel the row: its identity is the plan's (system, ε, δ, seed).
        row.update({k: v for k, v in facts.items() if k not in ("system", "epsilon", "delta", "seed")})
        priv = facts.get("privacy_report")
        row["guarantee"] = (
            priv.get("guarantee") if isinstance(priv, dict) else ("none" if system == "real" else "dp")
        )
        if synth is not None:
            try:
                rep = score(ds, synth, seed, grid.get("eval_bins", 20), priv)
                row.update(headline(rep))
                row["epsilon_spent"] = _epsilon_spent(priv) if system.startswith("tabpriv:") else eps
                rpath = work / f"{dname}_{system.replace(':', '-')}_e{eps}_s{seed}.report.json"
                rpath.write_text(json.dumps(rep, default=str))
                row["report_path"] = os.path.relpath(rpath, ROOT)
            except Exception as e:
                row["failed"] = f"evaluation: {type(e).__name__}: {e}"
        row["total_s"] = time.perf_counter() - t0
        row.pop("privacy_report", None)
        rows.append(row)
        with jsonl.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        log.info(
            "[%d/%d] %s %s eps=%s seed=%s: %s",
            i,
            len(todo),
            dname,
            system,
            eps,
            seed,
            row.get("failed")
            or row.get("skipped")
            or f"2-way TVD {row.get('tvd_2way')}, LR AUC {row.get('lr_auc_tstr')}, fit {row.get('fit_s')}",
        )
    for p in write_outputs(previous + rows, results, grid["name"]):
        log.info("wrote %s", p)
    return jsonl
