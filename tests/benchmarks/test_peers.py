"""Tests of the peer wiring of the benchmark runner and the pure logic of the peer runners.

The peers (smartnoise, dpmm, OpenDP's mbi synthesizers) run in their own venvs; what is tested here
needs none of them: how a peer system name is parsed (library, synthesizer, adjacency, sampling), which
command line the runner hands the peer, the skipped row when a venv is absent, the per-system time
limits, and the replace-one ε' rules (with a closed-form ρ(ε) so that the figures are exact).
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from benchmarks import runner

from .conftest import REPO

PEERS_DIR = REPO / "benchmarks" / "peers"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", PEERS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


dpmm_runner = _load("dpmm_runner")


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("smartnoise-mst", ("smartnoise", "mst", "add-remove", "round")),
        ("smartnoise-mst-iid", ("smartnoise", "mst", "add-remove", "sample")),
        ("smartnoise-mst-iid-replace-one", ("smartnoise", "mst", "replace-one", "sample")),
        ("smartnoise-aim-replace-one", ("smartnoise", "aim", "replace-one", "round")),
        ("dpmm-privbayes", ("dpmm", "privbayes", "add-remove", "round")),
        ("dpmm-aim-replace-one", ("dpmm", "aim", "replace-one", "round")),
        ("opendp-mst-replace-one", ("opendp", "mst", "replace-one", "round")),
        ("opendp-aim", ("opendp", "aim", "add-remove", "round")),
    ],
)
def test_peer_variant_parses_library_synth_adjacency_sampling(system: str, expected: tuple[str, ...]) -> None:
    v = runner.peer_variant(system)
    assert v is not None
    assert (v.library, v.synth, v.adjacency, v.sample_method) == expected


@pytest.mark.parametrize(
    "system",
    [
        "real",
        "tabpriv:mst",
        "smartnoise-",
        "smartnoise-privbayes",
        "opendp-privbayes",
        "dpmm-mst-replace",
        "x-mst",
    ],
)
def test_peer_variant_rejects_what_no_peer_runs(system: str) -> None:
    assert runner.peer_variant(system) is None


def test_smartnoise_variant_keeps_its_contract_and_refuses_other_peers() -> None:
    assert runner.smartnoise_variant("smartnoise-mst-iid-replace-one") == ("mst", "replace-one")
    with pytest.raises(ValueError, match="not a smartnoise peer"):
        runner.smartnoise_variant("dpmm-mst")


def test_timeout_for_first_matching_pattern_else_the_grid_limit() -> None:
    grid: dict[str, Any] = {"timeout_s": 3600, "timeouts": {"*-aim*": 1200, "dpmm-*": 900}}
    assert runner.timeout_for("dpmm-aim-replace-one", grid) == 1200.0  # first match wins
    assert runner.timeout_for("smartnoise-aim", grid) == 1200.0
    assert runner.timeout_for("dpmm-mst", grid) == 900.0
    assert runner.timeout_for("tabpriv:aim", grid) == 3600.0  # "*-aim*" needs the dash
    assert runner.timeout_for("opendp-mst", {}) == 3600.0


class _Tiny:
    """Just enough of a :class:`runner.Dataset` for ``run_system`` to build a peer's command."""

    name = "tiny"
    schema_path = Path("schema.json")

    def __init__(self) -> None:
        self.train = pd.DataFrame({"a": [1, 2, 3]})
        self.schema = None


@pytest.mark.parametrize(
    ("system", "attr", "setup"),
    [
        ("dpmm-mst", "DPMM_PY", "setup_dpmm.sh"),
        ("opendp-aim-replace-one", "OPENDP_PY", "setup_opendp_synth.sh"),
        ("smartnoise-mst-iid", "SMARTNOISE_PY", "setup_smartnoise.sh"),
    ],
)
def test_missing_venv_is_a_skipped_row_naming_the_setup_script(
    system: str, attr: str, setup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, attr, tmp_path / "no-venv" / "bin" / "python")
    (tmp_path / "tiny_train.csv").write_text("a\n1\n")
    synth, facts = runner.run_system(system, _Tiny(), 1.0, 1e-5, 0, tmp_path, 10.0)  # type: ignore[arg-type]
    assert synth is None
    assert "no-venv" in facts["skipped"] and setup in facts["skipped"]


@pytest.mark.parametrize(
    ("system", "attr", "script", "flags"),
    [
        ("smartnoise-mst-iid", "SMARTNOISE_PY", "smartnoise_runner.py", ("mst", "add-remove", "sample")),
        ("dpmm-privbayes-replace-one", "DPMM_PY", "dpmm_runner.py", ("privbayes", "replace-one", "round")),
        ("opendp-mst", "OPENDP_PY", "opendp_runner.py", ("mst", "add-remove", "round")),
    ],
)
def test_peer_command_line(
    system: str,
    attr: str,
    script: str,
    flags: tuple[str, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    py = tmp_path / "venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    monkeypatch.setattr(runner, attr, py)
    (tmp_path / "tiny_train.csv").write_text("a\n1\n")
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 3, "", "peer said no")

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    synth, facts = runner.run_system(system, _Tiny(), 5.1, 1e-6, 2, tmp_path, 10.0)  # type: ignore[arg-type]
    assert synth is None and facts["failed"] == "exit 3: peer said no"
    (cmd,) = seen
    assert cmd[0] == str(py) and Path(cmd[1]).name == script
    opts = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert (opts["--synth"], opts["--adjacency"], opts["--sample-method"]) == flags
    assert (opts["--epsilon"], opts["--delta"], opts["--seed"], opts["--n"]) == ("5.1", "1e-06", "2", "3")
    # every flag the runner passes is one the peer's own parser accepts
    args = _load(script.removesuffix(".py")).peer_arguments("x", [flags[0]]).parse_args(cmd[2:])
    assert args.sample_method == flags[2] and args.epsilon == 5.1


# -- the replace-one ε' rules, with a closed-form ρ(ε) ---------------------------------------------
def _rho(eps: float, delta: float) -> float:
    """ρ with ρ + 2·sqrt(ρ·log(1/δ)) = ε (the classic zCDP → (ε, δ) bound), increasing in ε."""
    lg = math.log(1.0 / delta)
    return (math.sqrt(lg + eps) - math.sqrt(lg)) ** 2


def _eps(rho: float, delta: float) -> float:
    """Inverse of :func:`_rho`."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


@pytest.mark.parametrize("eps", [1.0, 5.1, 10.0])
def test_privbayes_replace_one_epsilon_meets_the_budget_exactly(eps: float) -> None:
    delta = 1e-5
    e2 = dpmm_runner.privbayes_replace_one_epsilon(eps, delta, _rho, _eps)
    total = e2 / 2 + _eps(4 * _rho(e2 / 2, delta), delta)  # replace-one cost of PrivBayes at ε'
    assert 0 < e2 < eps
    assert total <= eps  # never more than the replace-one budget
    assert total == pytest.approx(eps, rel=1e-6)
    # closed form here: the Gaussian half at ε'/2 costs ρ' = ρ(ε'/2), replace-one 4ρ' = (2·sqrt(ρ'))²
    assert _eps(4 * _rho(e2 / 2, delta), delta) > e2 / 2


def test_mst_and_aim_replace_one_rule_is_the_shared_quarter_rho() -> None:
    e2 = dpmm_runner.matched_epsilon(5.1, 1e-5, _rho)
    assert _rho(e2, 1e-5) <= _rho(5.1, 1e-5) / 4
    assert _rho(e2, 1e-5) == pytest.approx(_rho(5.1, 1e-5) / 4, rel=1e-6)


def test_opendp_rho_for_inverts_opendp_s_own_conversion() -> None:
    """In a subprocess: the runner enables OpenDP's "contrib" features, a process-wide switch."""
    pytest.importorskip("opendp")
    code = (
        "import importlib.util, math\n"
        f"spec = importlib.util.spec_from_file_location('od', {str(PEERS_DIR / 'opendp_runner.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "rho = m.rho_for(5.1, 1e-5)\n"
        "print(rho, m.epsilon_of_rho(rho, 1e-5))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    rho, eps = map(float, out.stdout.split())
    assert eps <= 5.1
    assert eps == pytest.approx(5.1, rel=1e-6)
    # OpenDP's conversion (Canonne, Kamath & Steinke) is tighter than the classic bound of _rho
    assert rho > _rho(5.1, 1e-5)
