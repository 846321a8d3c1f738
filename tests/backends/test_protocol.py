"""The backend protocol pieces: declarative parameter constraints, the registry, ``spend_all``."""

from __future__ import annotations

import math

import pytest

from tabpriv.backends import (
    BackendRegistryError,
    available_backends,
    get_backend_class,
    register_backend,
    unregister_backend,
)
from tabpriv.backends._params import (
    Boolean,
    Interval,
    NoneAllowed,
    Options,
    Satisfies,
    check_value,
    validate_params,
)
from tabpriv.budget import PlannedSpend, PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, PrivacyParameterError, UnknownBackendError


# -- constraints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Interval(int, 1, None, closed="left"), [1, 2, 10**9], [0, -1, 1.0, True, "3", None, math.inf]),
        (Interval(float, 0, None, closed="neither"), [1e-9, 1, 2.5], [0, 0.0, -1, math.nan, math.inf, False]),
        (Interval(float, 0, 1, closed="right"), [1, 0.5, 1e-12], [0, 1.0000001, -0.1]),
        (Interval(float, 0, 1, closed="neither"), [0.5], [0, 1, 0.0, 1.0]),
        (Options(("a", "b")), ["a", "b"], ["c", None, 1]),
        (Options((0,)), [0], [False, 0.5, "0"]),
        (Boolean(), [True, False], [1, 0, "yes", None]),
        (NoneAllowed(), [None], [0, "", False]),
        (Satisfies(lambda v: v.startswith("x"), "a string starting with x"), ["xy"], ["y", 3]),
    ],
)
def test_constraints_accept_and_refuse(constraint, good, bad) -> None:  # type: ignore[no-untyped-def]
    assert all(constraint.is_satisfied_by(v) for v in good)
    assert not any(constraint.is_satisfied_by(v) for v in bad)


def test_one_message_template_names_parameter_value_and_allowed() -> None:
    allowed = [Options((0,)), Interval(int, 2, None, closed="left")]
    with pytest.raises(PrivacyParameterError) as info:
        check_value("numeric_bins", 1, allowed, owner="dp2-vae")
    assert str(info.value) == ("numeric_bins must be 0 or an integer in [2, inf); got 1 (backend 'dp2-vae').")
    check_value("numeric_bins", 0, allowed)
    check_value("reg", None, [Interval(float, 0, None, closed="neither"), None])
    with pytest.raises(
        PrivacyParameterError, match=r"reg must be a finite number in \(0, inf\) or None; got -1"
    ):
        check_value("reg", -1, [Interval(float, 0, None, closed="neither"), None])


def test_validate_params_reads_the_class_declaration() -> None:
    cls = get_backend_class("independent")
    validate_params(cls())
    with pytest.raises(
        PrivacyParameterError, match=r"bins must be an integer in \[1, inf\); got 0 \(backend 'independent'\)"
    ):
        validate_params(cls(bins=0))


# -- registry ------------------------------------------------------------------------------------------
def test_register_backend_refuses_a_duplicate_name() -> None:
    target = "tabpriv.backends.independent:IndependentBackend"
    with pytest.raises(BackendRegistryError, match="already registered"):
        register_backend("slicing", target)
    assert get_backend_class("slicing").name == "slicing"  # nothing was overwritten
    register_backend("independent", target)  # the same target again: a no-op
    try:
        register_backend("test-plugin", target)
        assert "test-plugin" in available_backends()
        with pytest.raises(BackendRegistryError, match="replace=True"):
            register_backend("test-plugin", "tabpriv.backends.slicing.backend:SlicingBackend")
        register_backend("test-plugin", "tabpriv.backends.slicing.backend:SlicingBackend", replace=True)
        assert get_backend_class("test-plugin").name == "slicing"
    finally:
        unregister_backend("test-plugin")
    assert "test-plugin" not in available_backends()
    with pytest.raises(UnknownBackendError):
        unregister_backend("test-plugin")
    with pytest.raises(BackendRegistryError, match="ClassName"):
        register_backend("other", "no-colon")


# -- spend_all: all or nothing, one budget rule --------------------------------------------------------
def _s(eps: float, delta: float, name: str = "m") -> PlannedSpend:
    return PlannedSpend(name, eps, delta, "test", {"sigma": 1.0})


def test_spend_all_records_every_spend_or_none() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    with pytest.raises(BudgetExceededError):
        led.spend_all([_s(0.6, 4e-7, "a"), _s(0.5, 4e-7, "b")])  # each fits, the sum does not
    assert led.spends == []
    with pytest.raises(BudgetExceededError):
        led.spend_all([_s(0.3, 6e-7), _s(0.3, 6e-7)])  # delta total over
    assert led.spends == []
    entries = led.spend_all([_s(0.6, 4e-7, "a"), _s(0.4, 6e-7, "b")])
    assert [e.mechanism for e in led.spends] == ["a", "b"] and entries == led.spends
    assert entries[0].timestamp == entries[1].timestamp
    assert led.epsilon_spent == pytest.approx(1.0)
    with pytest.raises(BudgetExceededError, match="spent"):  # nothing left: the available() rule
        led.spend_all([_s(0.0, 0.0)])


def test_spend_all_refuses_empty_and_non_finite_plans() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    with pytest.raises(PrivacyParameterError, match="at least one spend"):
        led.spend_all([])
    for eps, delta in ((math.nan, 1e-7), (-0.1, 1e-7), (0.1, math.inf)):
        with pytest.raises(PrivacyParameterError, match="finite and non-negative"):
            led.spend_all([_s(0.1, 1e-7), _s(eps, delta)])
    assert led.spends == []


def test_spend_all_checks_every_ancestor() -> None:
    root = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    mid = root.child(PrivacyBudget(2.0, 1e-5))
    leaf = mid.child(PrivacyBudget(2.0, 1e-5))
    root.spend("elsewhere", 1.5, 1e-6, "test")  # spent on the data after the children were made
    with pytest.raises(BudgetExceededError):
        leaf.spend_all([_s(0.4, 1e-7), _s(0.4, 1e-7)])  # fits leaf and mid, not the root
    assert leaf.spends == [] and mid.spends == [] and len(root.spends) == 1
    leaf.spend_all([_s(0.25, 1e-7), _s(0.25, 1e-7)])
    assert len(leaf.spends) == len(mid.spends) == 2 and len(root.spends) == 3


# -- no import circles: the torch helpers take typed configs, never the backend object ----------------
@pytest.mark.parametrize(
    ("helper", "backend_module"),
    [
        ("tabpriv/backends/vae/dp2_torch.py", "tabpriv.backends.vae.dp2"),
        ("tabpriv/backends/vae/dpsgd_torch.py", "tabpriv.backends.vae.dpsgd"),
    ],
)
def test_torch_helpers_do_not_import_their_backend_module(helper: str, backend_module: str) -> None:
    import ast
    from pathlib import Path

    import tabpriv

    source = (Path(tabpriv.__file__).parent.parent / helper).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):  # every import, top level, lazy or TYPE_CHECKING
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert backend_module not in imported
    assert not any(m.startswith(backend_module + ".") for m in imported)


def test_cli_command_modules_do_not_import_each_other() -> None:
    # cli/app <-> cli/evaluate was an import circle (evaluate imported cli_errors from app).
    import ast
    from pathlib import Path

    import tabpriv.cli

    root = Path(tabpriv.cli.__file__).parent
    for name, other in (("evaluate.py", "tabpriv.cli.app"), ("_errors.py", "tabpriv.cli.app")):
        tree = ast.parse((root / name).read_text())
        imported = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module is not None
        }
        assert other not in imported, f"{name} imports {other}"


# -- the family layout: backends/slicing/, backends/vae/, backends/independent.py ---------------------
_FAMILY = {
    "independent": "tabpriv.backends.independent",
    "slicing": "tabpriv.backends.slicing.backend",
    "slicing-wasserstein": "tabpriv.backends.slicing.backend",
    "dp2-vae": "tabpriv.backends.vae.dp2",
    "dpsgd-vae": "tabpriv.backends.vae.dpsgd",
    "lipschitz-vae": "tabpriv.backends.vae.lipschitz",
    "mst": "tabpriv.backends.marginal.mst",
    "aim": "tabpriv.backends.marginal.aim",
    "pgd": "tabpriv.backends.marginal.pgd",
}


def test_every_registered_backend_lives_in_its_family_module() -> None:
    import importlib

    assert set(available_backends()) == set(_FAMILY)
    for name in available_backends():
        cls = get_backend_class(name)
        assert cls.__module__ == _FAMILY[name], name
        family = _FAMILY[name].rpartition(".")[0]
        if family != "tabpriv.backends":  # the subpackage exports the class under the same object
            assert getattr(importlib.import_module(family), cls.__name__) is cls


@pytest.mark.parametrize(
    "old",
    [
        "tabpriv.backends._slicing_mechanism",
        "tabpriv.backends._slicing_train",
        "tabpriv.backends._vae",
        "tabpriv.backends.dp2vae",
        "tabpriv.backends._dp2vae_torch",
        "tabpriv.backends.dpsgd_vae",
        "tabpriv.backends._dpsgd_vae_torch",
        "tabpriv.backends._dpsgd",
        "tabpriv.backends.lipschitz_vae",
        "tabpriv.backends._lipschitz_torch",
    ],
)
def test_old_flat_module_paths_are_gone(old: str) -> None:
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_family_packages_export_names_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import tabpriv, tabpriv.backends, tabpriv.backends.slicing, tabpriv.backends.vae\n"
        "from tabpriv.backends import available_backends\n"
        "available_backends()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'opacus'))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('tabpriv.backends.slicing.',"
        " 'tabpriv.backends.vae.')))\n"
        "print(heavy, loaded)\n"
        "assert not heavy and not loaded, (heavy, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] []"
