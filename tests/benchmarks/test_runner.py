"""Tests of the benchmark runner (``benchmarks/runner.py``): plan, resume, tables, loading, one run.

Nothing here is timed and no quality figure is asserted beyond what the tiny inputs fix exactly. The
end-to-end test runs the real subprocess path for ``tabpriv:independent`` on a 400-row table (a few
seconds) and needs neither the smartnoise venv nor the shared datasets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import runner
from tabpriv.backends import available_backends

from .conftest import tiny_schema, tiny_table

LABELS = [label for _, label in runner.METRICS]


def _row(system: str, eps: float | None, seed: int, dataset: str = "d", **kw: Any) -> dict[str, Any]:
    return {"dataset": dataset, "system": system, "epsilon": eps, "seed": seed, **kw}


def _cells(line: str) -> list[str]:
    """Cells of one Markdown table line (a trailing HTML comment after the last ``|`` is dropped)."""
    return [c.strip() for c in line.split("|")[1:-1]]


def _table_rows(md: str) -> dict[str, list[str]]:
    """Data rows of a Markdown table keyed by their first cell (header and rule lines skipped)."""
    out = {}
    for line in md.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| system"):
            cells = _cells(line)
            out[f"{cells[0]}@{cells[1]}"] = cells
    return out


# -- plan -------------------------------------------------------------------------------------------
def test_plan_is_seed_major_with_real_once_per_seed() -> None:
    grid = {"datasets": ["a", "b"], "seeds": [0, 1], "epsilons": [1.0, 5.1]}
    systems = ["tabpriv:x", "real", "smartnoise-mst"]
    got = runner.plan(grid, systems)
    expected: list[tuple[str, str, float | None, int]] = []
    for d in ("a", "b"):
        for seed in (0, 1):
            for eps in (1.0, 5.1):
                expected += [(d, "tabpriv:x", eps, seed), (d, "smartnoise-mst", eps, seed)]
            expected.append((d, "real", None, seed))
    assert got == expected
    # every system at every ε for seed 0 comes before anything of seed 1
    first_seed1 = next(i for i, t in enumerate(got) if t[0] == "a" and t[3] == 1)
    assert {t[3] for t in got[:first_seed1]} == {0}
    assert len(got[:first_seed1]) == 2 * 2 + 1
    assert sum(t[1] == "real" for t in got) == 4  # once per (dataset, seed), never per ε


def test_plan_without_real() -> None:
    got = runner.plan({"datasets": ["a"], "seeds": [3], "epsilons": [10.0]}, ["tabpriv:x"])
    assert got == [("a", "tabpriv:x", 10.0, 3)]


# -- resume -----------------------------------------------------------------------------------------
def test_completed_rows_last_record_of_a_key_wins(tmp_path: Path) -> None:
    assert runner.completed_rows(tmp_path / "absent.jsonl") == []
    records = [
        _row("tabpriv:a", 1.0, 0, failed="exit 1"),  # failed, then redone fine: kept
        _row("tabpriv:a", 1.0, 0, tvd_2way=0.1),
        _row("tabpriv:b", 1.0, 0, tvd_2way=0.2),  # fine, then failed on a rerun: redone
        _row("tabpriv:b", 1.0, 0, failed="timeout after 10 s"),
        _row("smartnoise-mst", 1.0, 0, skipped="venv missing"),  # skipped: redone
        _row("real", None, 0, tvd_2way=0.0),
        _row("tabpriv:a", 1.0, 1, tvd_2way=0.3),
        _row("tabpriv:a", 1.0, 1, tvd_2way=0.4),  # two good records: the last one wins
    ]
    path = tmp_path / "grid.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in records[:4])
        + "\n\n"
        + "\n".join(json.dumps(r) for r in records[4:])
        + "\n"
    )
    done = runner.completed_rows(path)
    keys = {(r["system"], r["epsilon"], r["seed"]): r for r in done}
    assert set(keys) == {("tabpriv:a", 1.0, 0), ("real", None, 0), ("tabpriv:a", 1.0, 1)}
    assert keys[("tabpriv:a", 1.0, 0)]["tvd_2way"] == 0.1
    assert keys[("tabpriv:a", 1.0, 1)]["tvd_2way"] == 0.4
    assert all("failed" not in r and "skipped" not in r for r in done)


# -- systems ----------------------------------------------------------------------------------------
def test_expand_systems_is_the_registry() -> None:
    registry = [f"tabpriv:{b}" for b in available_backends()]
    assert registry  # at least the independent backend
    assert runner.expand_systems(["tabpriv:*"]) == registry
    # order kept, duplicates dropped, other names passed through
    got = runner.expand_systems(["real", "tabpriv:independent", "tabpriv:*", "smartnoise-mst", "real"])
    assert got == [
        "real",
        "tabpriv:independent",
        *[s for s in registry if s != "tabpriv:independent"],
        "smartnoise-mst",
    ]


# -- tables -----------------------------------------------------------------------------------------
def test_markdown_table_mean_std_failed_and_dagger() -> None:
    rows = [
        _row("tabpriv:a", 1.0, s, tvd_2way=v, fit_s=f, guarantee="dp")
        for s, v, f in ((0, 0.1, 12.0), (1, 0.2, 14.0), (2, 0.3, 16.0))
    ]
    rows += [
        _row("tabpriv:a", 1.0, 3, failed="exit 1: boom"),  # a failed seed is left out of the group
        _row("smartnoise-mst", 1.0, 0, skipped="first line\nvenv missing; run setup_smartnoise.sh"),
        _row("tabpriv:b", 1.0, 0, tvd_2way=0.5, guarantee="conditional"),
        _row("real", None, 0, tvd_2way=0.0, guarantee="none"),
        _row("tabpriv:a", 1.0, 0, dataset="other", tvd_2way=9.0),  # another dataset: not in this table
    ]
    md = runner.markdown_table(rows, "d")
    lines = md.splitlines()
    assert _cells(lines[0]) == ["system", "ε", "seeds", *LABELS]
    assert lines[1] == "|" + "---|" * (3 + len(LABELS))
    table = _table_rows(md)
    assert list(table) == ["real@no DP", "smartnoise-mst@1.0", "tabpriv:a@1.0", "tabpriv:b †@1.0"]
    col = {label: 3 + i for i, label in enumerate(LABELS)}

    a = table["tabpriv:a@1.0"]
    assert a[2] == "3"  # seeds that finished
    assert a[col["2-way TVD ↓"]] == "0.200 ± 0.100"  # mean ± sample std (ddof=1)
    assert a[col["fit s"]] == "14.0 ± 2.0"  # one decimal from 10 up
    assert a[col["MIA AUC"]] == "–"  # not recorded

    sn = table["smartnoise-mst@1.0"]
    assert sn[2] == "0"
    assert all(c == "–" for c in sn[3:])
    sn_line = next(line for line in lines if line.startswith("| smartnoise-mst |"))
    assert sn_line.endswith("<!-- venv missing; run setup_smartnoise.sh -->")  # the reason's last line

    b = table["tabpriv:b †@1.0"]
    assert b[col["2-way TVD ↓"]] == "0.500"  # one seed: no ±
    assert "† not (ε, δ)-DP end to end" in md
    assert table["real@no DP"][col["2-way TVD ↓"]] == "0.000"
    assert "9.000" not in md

    only_dp = runner.markdown_table([r for r in rows if r["system"] != "tabpriv:b"], "d")
    assert "†" not in only_dp


def test_speed_table_median_and_ratio_to_mst() -> None:
    rows = [_row("smartnoise-mst", 1.0, s, fit_s=f, sample_s=1.0) for s, f in enumerate((9.0, 19.0, 29.0))]
    rows += [_row("tabpriv:a", 1.0, s, fit_s=f, sample_s=1.0) for s, f in enumerate((1.0, 2.0, 9.0))]
    rows += [
        _row("tabpriv:a", 5.1, 0, fit_s=4.0, sample_s=0.5),  # no MST at this ε: no ratio
        _row("tabpriv:a", 1.0, 3, failed="exit 1"),  # no timing: not counted
        _row("real", None, 0, fit_s=0.0, sample_s=0.0),  # the ceiling has no speed row
    ]
    md = runner.speed_table(rows, "d")
    assert _cells(md.splitlines()[0]) == [
        "system",
        "ε",
        "runs",
        "median fit+sample s",
        "ratio to smartnoise-mst",
    ]
    body = [_cells(line) for line in md.splitlines()[2:]]
    assert body == [
        ["smartnoise-mst", "1.0", "3", "20.00", "1.000"],
        ["tabpriv:a", "1.0", "3", "3.00", "0.150"],  # median(2, 3, 10) / median(10, 20, 30)
        ["tabpriv:a", "5.1", "1", "4.50", "–"],
    ]


def test_summary_table_cells_ratio_and_failures() -> None:
    rows = [
        _row(
            "smartnoise-mst", 5.1, s, fit_s=f, sample_s=0.0, tvd_2way=0.1, lr_auc_tstr=0.8, peak_rss_mb=900.0
        )
        for s, f in enumerate((10.0, 20.0, 30.0))
    ]
    rows += [
        _row("tabpriv:a", 5.1, s, fit_s=f, sample_s=0.0, tvd_2way=t, lr_auc_tstr=0.6, peak_rss_mb=m)
        for s, (f, t, m) in enumerate(((1.0, 0.2, 100.0), (5.0, 0.3, 300.0), (9.0, 0.4, 200.0)))
    ]
    rows += [
        _row("tabpriv:a", 1.0, 0, fit_s=1.0, sample_s=0.0, tvd_2way=0.5, lr_auc_tstr=0.5),  # one seed
        _row("smartnoise-aim", 5.1, 0, failed="timeout after 3600 s"),
        _row("real", None, 0, fit_s=0.0, sample_s=0.0, tvd_2way=0.0, lr_auc_tstr=0.9),
        _row(
            "tabpriv:b",
            5.1,
            0,
            fit_s=2.0,
            sample_s=0.0,
            tvd_2way=0.3,
            lr_auc_tstr=0.7,
            guarantee="conditional",
        ),
    ]
    md = runner.summary_table(rows, "d")
    lines = md.splitlines()
    assert _cells(lines[0])[:3] == ["system", "ε = 1", "ε = 5.1"]
    body = {c[0]: c[1:] for c in (_cells(line) for line in lines[2:])}
    assert list(body) == ["real (no DP)", "smartnoise-aim", "smartnoise-mst", "tabpriv:a", "tabpriv:b †"]
    assert body["real (no DP)"][0] == "0.000 / 0.900"
    assert body["smartnoise-aim"][:2] == ["–", "timeout"]
    assert body["smartnoise-mst"] == ["–", "0.100 ± 0.000 / 0.800 ± 0.000", "1.00", "900"]
    # tabpriv:a at 5.1: TVD mean 0.3 ± sd 0.1, median time 5 / MST's 20, median peak 200 MB
    assert body["tabpriv:a"] == ["0.500 / 0.500 (1 seed)", "0.300 ± 0.100 / 0.600 ± 0.000", "0.25", "200"]
    assert body["tabpriv:b †"][1] == "0.300 / 0.700 (1 seed)"


# -- headline figures -------------------------------------------------------------------------------
def test_headline_from_a_real_evaluation_report() -> None:
    from tabpriv.evaluation import evaluate

    schema = tiny_schema()
    train, holdout, synth = tiny_table(300, 0), tiny_table(250, 1), tiny_table(300, 2)
    rep = evaluate(
        train, synth, schema, holdout=holdout, target="flag", bins=10, random_state=0, sdmetrics=False
    ).to_dict()
    h = runner.headline(rep)
    lr = rep["utility"]["models"]["logistic_regression"]
    assert h["tvd_1way"] == rep["marginals"]["one_way"]["mean"]
    assert h["tvd_2way"] == rep["marginals"]["two_way"]["mean"]
    assert h["tvd_3way"] == rep["marginals"]["three_way"]["mean"]
    assert h["tvd_2way_holdout_baseline"] == rep["marginals_holdout_baseline"]["two_way"]["mean"]
    assert h["lr_auc_tstr"] == lr["synthetic"]["roc_auc"]
    assert h["lr_auc_trtr"] == lr["real"]["roc_auc"]
    assert h["lr_acc_tstr"] == lr["synthetic"]["accuracy"]
    assert h["lr_acc_trtr"] == lr["real"]["accuracy"]
    attacks = rep["membership"]["attacks"]
    aucs = {k: v["auc"] for k, v in attacks.items() if isinstance(v, dict) and "auc" in v}
    assert len(aucs) >= 2
    assert h["mia_auc"] == max(aucs.values())
    assert h["mia_auc_attack"] in aucs and aucs[h["mia_auc_attack"]] == h["mia_auc"]
    assert h["mia_tpr_at_1pct_fpr"] == max(
        v["tpr_at_fpr_1pct"] for v in attacks.values() if isinstance(v, dict)
    )
    for key in ("tvd_1way", "tvd_2way", "tvd_3way", "lr_auc_tstr", "mia_auc"):
        assert 0.0 <= h[key] <= 1.0, key
    # an empty or partial report gives None, never an exception
    assert all(v is None for v in runner.headline({}).values())


# -- datasets ---------------------------------------------------------------------------------------
def _spec(csv: Path, schema: Path, **kw: Any) -> dict[str, Any]:
    return {"path": str(csv), "schema": str(schema), "target": "flag", "split_seed": 7, **kw}


def test_load_dataset_seeded_split_is_deterministic_and_disjoint(tiny_csv: tuple[Path, Path]) -> None:
    csv, schema_path = tiny_csv
    ds = runner.load_dataset("tiny", _spec(csv, schema_path, holdout_fraction=0.2))
    again = runner.load_dataset("tiny", _spec(csv, schema_path, holdout_fraction=0.2))
    pd.testing.assert_frame_equal(ds.train, again.train)
    pd.testing.assert_frame_equal(ds.holdout, again.holdout)
    assert (len(ds.train), len(ds.holdout)) == (800, 200)
    ids_train, ids_hold = set(ds.train["id"]), set(ds.holdout["id"])
    assert not ids_train & ids_hold
    assert ids_train | ids_hold == set(range(1000))
    # the documented rule: the first 20% of numpy's seeded permutation is the hold-out, in file order
    perm = np.random.default_rng(7).permutation(1000)
    assert ds.holdout["id"].tolist() == sorted(perm[:200].tolist())
    assert ds.split["kind"] == "seeded"
    assert ds.split["split_seed"] == 7
    assert ds.split["holdout_fraction"] == 0.2
    assert (ds.split["n_train"], ds.split["n_holdout"]) == (800, 200)
    assert ds.target == "flag" and ds.schema_path == schema_path
    other = runner.load_dataset("tiny", _spec(csv, schema_path, split_seed=8))
    assert set(other.holdout["id"]) != ids_hold


def test_load_dataset_clips_into_declared_bounds_and_records_counts(tmp_path: Path) -> None:
    df = tiny_table(50, 3)
    df.loc[[0, 1, 2], "age"] = [5, 120, 95]  # outside [18, 90]
    df.loc[3, "score"] = 12.5  # outside [0, 10]
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    schema_path = tmp_path / "t.schema.json"
    tiny_schema().to_json(schema_path)
    ds = runner.load_dataset("t", _spec(csv, schema_path, holdout_fraction=0.2))
    total: dict[str, int] = {}
    for part in ("clipped_train", "clipped_holdout"):
        for name, k in ds.split[part].items():
            total[name] = total.get(name, 0) + k
    assert total == {"age": 3, "score": 1}
    both = pd.concat([ds.train, ds.holdout]).set_index("id").sort_index()
    assert both.loc[[0, 1, 2], "age"].tolist() == [18, 90, 90]
    assert both.loc[3, "score"] == 10.0
    assert both["age"].between(18, 90).all()


def test_load_dataset_subsamples_training_rows(tiny_csv: tuple[Path, Path]) -> None:
    csv, schema_path = tiny_csv
    full = runner.load_dataset("tiny", _spec(csv, schema_path))
    ds = runner.load_dataset("tiny", _spec(csv, schema_path), max_train_rows=50)
    assert len(ds.train) == 50 and ds.split["n_train"] == 50
    assert ds.split["train_subsample"] == {"rows": 50, "seed": 12345}
    assert set(ds.train["id"]) <= set(full.train["id"])
    pd.testing.assert_frame_equal(ds.holdout, full.holdout)  # the hold-out is never subsampled


def test_load_dataset_missing_file_says_where(tmp_path: Path) -> None:
    schema_path = tmp_path / "s.json"
    tiny_schema().to_json(schema_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.csv is missing"):
        runner.load_dataset("x", _spec(tmp_path / "nope.csv", schema_path))


# -- one end-to-end run -----------------------------------------------------------------------------
def _write_config(tmp_path: Path, csv: Path, schema_path: Path) -> Path:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        f"""
[run]
name = "tiny"
epsilons = [5.0]
delta = 1e-5
seeds = [0]
systems = ["tabpriv:independent", "smartnoise-mst", "real"]
datasets = ["tiny"]
results_dir = "{(tmp_path / "results").as_posix()}"
timeout_s = 300
eval_bins = 10

[datasets.tiny]
path = "{csv.as_posix()}"
schema = "{schema_path.as_posix()}"
target = "flag"
split_seed = 0
holdout_fraction = 0.5
""",
        encoding="utf-8",
    )
    return cfg


def test_run_end_to_end_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 400 rows split 50/50: the 200 hold-out rows the membership attacks need, and little else
    csv, schema_path = tmp_path / "tiny.csv", tmp_path / "tiny.schema.json"
    tiny_table(400, 5).to_csv(csv, index=False)
    tiny_schema().to_json(schema_path)
    monkeypatch.setattr(runner, "SMARTNOISE_PY", tmp_path / "no-venv" / "bin" / "python")
    cfg = _write_config(tmp_path, csv, schema_path)

    jsonl = runner.run(str(cfg))
    results = tmp_path / "results"
    assert jsonl == results / "tiny.jsonl"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["system"], r["epsilon"], r["seed"]) for r in rows] == [
        ("tabpriv:independent", 5.0, 0),
        ("smartnoise-mst", 5.0, 0),
        ("real", None, 0),
    ]
    ind, sn, real = rows
    # tabpriv row: evaluated, with its privacy facts, commit and split recorded
    assert "failed" not in ind and "skipped" not in ind, ind.get("failed")
    assert ind["guarantee"] == "dp"
    assert ind["delta"] == 1e-5
    assert 0.0 < ind["epsilon_spent"] <= 5.0 + 1e-9
    for key in ("tvd_1way", "tvd_2way", "lr_auc_tstr", "mia_auc"):
        assert isinstance(ind[key], float) and 0.0 <= ind[key] <= 1.0, key
    assert ind["fit_s"] >= 0.0 and ind["sample_s"] >= 0.0 and ind["peak_rss_mb"] > 0.0
    assert ind["split"]["n_train"] == 200 and ind["split"]["n_holdout"] == 200
    assert ind["run"] == "tiny"
    commit = ind["host"]["commit"]  # the code that ran (None only outside a git checkout)
    if (runner.ROOT / ".git").exists():
        assert isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{4,40}", commit), commit
    assert (runner.ROOT / ind["report_path"]).is_file()
    # smartnoise without its venv: recorded as skipped, saying why
    assert "no-venv" in sn["skipped"] and "setup_smartnoise.sh" in sn["skipped"]
    # the ceiling: the training table itself, no privacy
    assert real["guarantee"] == "none" and real["delta"] is None
    assert real["tvd_1way"] == pytest.approx(0.0, abs=1e-12)

    md = (results / "tiny_tiny.md").read_text()
    table = _table_rows(md)
    assert table["tabpriv:independent@5.0"][2] == "1"
    assert table["real@no DP"][2] == "1"
    assert table["smartnoise-mst@5.0"][2] == "0"
    assert "<!--" in next(line for line in md.splitlines() if line.startswith("| smartnoise-mst"))
    assert "#### tiny: speed" in md
    png = results / "tiny_tiny.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --resume: finished runs are not redone; the skipped one is tried again
    calls: list[str] = []
    timeouts: list[float] = []
    real_run_system = runner.run_system

    def spy(system: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(system)
        timeouts.append(args[-1])  # run_system(system, ds, eps, delta, seed, work, timeout_s)
        return real_run_system(system, *args, **kwargs)

    monkeypatch.setattr(runner, "run_system", spy)
    plotted: list[str] = []
    monkeypatch.setattr(runner, "plot", lambda rows, dataset, path: plotted.append(dataset))  # seen above
    runner.run(str(cfg), resume=True, timeout_s=7200)
    assert calls == ["smartnoise-mst"]
    assert timeouts == [7200.0]  # --timeout-s replaces the config's 300 s
    assert plotted == ["tiny"]
    assert len(jsonl.read_text().splitlines()) == 4
    # tables rebuilt from all finished rows of the file
    table = _table_rows((results / "tiny_tiny.md").read_text())
    assert table["tabpriv:independent@5.0"][2] == "1"
    assert table["real@no DP"][2] == "1"


def test_run_facts_never_relabel_the_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's meta saying ``system``/``epsilon`` must not overwrite the plan's identity of the row."""
    csv, schema_path = tmp_path / "tiny.csv", tmp_path / "tiny.schema.json"
    tiny_table(400, 5).to_csv(csv, index=False)
    tiny_schema().to_json(schema_path)
    cfg = _write_config(tmp_path, csv, schema_path)

    def fake_run_system(system: str, ds: Any, eps: float, *args: Any) -> Any:
        facts = {"system": "smartnoise-mst", "epsilon": 99.0, "adjacency": "replace-one", "fit_s": 1.0}
        return ds.train.copy(), {**facts, "sample_s": 0.0}

    monkeypatch.setattr(runner, "run_system", fake_run_system)
    monkeypatch.setattr(runner, "plot", lambda rows, dataset, path: None)
    jsonl = runner.run(str(cfg), only_systems=["smartnoise-mst-replace-one"])
    (row,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert row["system"] == "smartnoise-mst-replace-one" and row["epsilon"] == 5.0
    assert row["adjacency"] == "replace-one"  # the other facts are kept


@pytest.mark.parametrize("bad", ["0", "-5", "nan", "soon"])
def test_timeout_s_must_be_positive_seconds(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "--timeout-s", bad])
    assert exc.value.code == 2
    assert "must be a number of seconds > 0" in capsys.readouterr().err
