"""Issue 18's property: no backend emits an integer the declared domain does not allow, or spikes one.

For every registered backend, a fit on a table with integer columns of several widths and a sample
from it must satisfy:

* **lattice**: every value of an integer column is a whole number within the column's declared
  bounds (missing only where the column allows it) -- narrow columns (one level per value, at most
  :data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS` values), a 99-value column at the limit,
  and a wide column (binned, then rounded);
* **no spike**: in the narrow columns, no value's synthetic share is far above its share in the real
  table (``SPIKE_TOL``, absolute). A value the real table never has is the sharpest case: with the
  equal-width bins of before (21 values in 20 bins, decoded uniformly within a bin) ``dpsgd-vae`` gave
  12.3% of a census table's rows a years-of-schooling value that never occurs.

The real shares stand in for "what the release measured": at ``EPSILON`` = 8 on 1,500 rows the
measured marginals are within a few points of the real ones, and the tolerance (0.12) is far above
the sampling noise of 3,000 synthetic rows (s.e. <= 0.009) and the DP noise, yet below a spike like
the one above. Fixed seeds, quick parameters (each backend's ``quick_params``); the marginal backends
whose fit takes longest are marked slow. The slicing backends fail the no-spike half today
(:data:`KNOWN_SPIKES`: strict xfail, so a fix shows up as an unexpected pass).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import available_backends, get_backend_class
from tabpriv.schema import Column, Schema

EPSILON = 8.0
N_REAL = 1500
N_SYN = 3000
SPIKE_TOL = 0.12
SLOW = {"aim", "mst"}  # 13-20 s wall each with their quick parameters (load ~10 on 2 CPUs)


def _schema() -> Schema:
    return Schema(
        (
            Column("school", "integer", lower=0, upper=20),  # 21 values, one more than 20 bins
            Column("children", "integer", lower=0, upper=6, missing=True),
            Column("hours", "integer", lower=1, upper=99),  # 99 values: the widest with one level each
            Column("income", "integer", lower=0, upper=100_000),  # wide: binned, then rounded
            Column("sex", "categorical", categories=("f", "m")),
        )
    )


def _real(n: int = N_REAL, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    school = rng.choice([9, 12, 16], size=n, p=[0.2, 0.5, 0.3])  # 18 of the 21 values never occur
    children = rng.choice([0.0, 1.0, 2.0, 3.0, np.nan], size=n, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    hours = np.where(rng.random(n) < 0.5, 40, rng.integers(20, 61, size=n))  # a spike at 40
    income = np.where(rng.random(n) < 0.6, 0, rng.integers(1_000, 90_000, size=n))
    sex = rng.choice(["f", "m"], size=n)
    return pd.DataFrame(
        {"school": school, "children": children, "hours": hours, "income": income, "sex": sex}
    )


NARROW = ("school", "children", "hours")


#: Backends that fail the no-spike property today (reported in issue 18, not fixed here): the
#: slicing generators emit numbers on a continuous scale that are then rounded, so an integer column
#: has no level per value and rows land between the real values. On this table (real ``school``
#: values 9, 12 and 16 only) ``slicing`` at its default parameters gave 17% of rows 11, 15% 10 and
#: 13.5% 13; ``slicing-wasserstein`` 15% 19 and 10% 18 (values the real table never has).
KNOWN_SPIKES = {
    "slicing": "slicing decodes integers by rounding a continuous output (no level per value)",
    "slicing-wasserstein": "slicing decodes integers by rounding a continuous output (no level per value)",
}


def _params(name: str, known: dict[str, str] | None = None) -> list[object]:
    marks: list[pytest.MarkDecorator] = [pytest.mark.slow] if name in SLOW else []
    if known is not None and name in known:
        marks.append(pytest.mark.xfail(reason=known[name], strict=True, raises=AssertionError))
    return [pytest.param(name, marks=marks, id=name)]


ALL = [p for name in available_backends() for p in _params(name)]
SPIKE_CASES = [p for name in available_backends() for p in _params(name, KNOWN_SPIKES)]


@functools.cache
def _real_table() -> pd.DataFrame:
    return _real()


@functools.cache
def _synthetic(backend: str) -> pd.DataFrame:
    """One fit and one sample per backend, shared by the two tests (fixed seed)."""
    synth = Synthesizer(
        backend=backend,
        epsilon=EPSILON,
        delta=1e-5,
        schema=_schema(),
        device="cpu",
        random_state=0,
        backend_params=dict(get_backend_class(backend).quick_params),
    ).fit(_real_table())
    out = synth.sample(N_SYN)
    assert len(out) == N_SYN
    return out


@pytest.mark.parametrize("backend", ALL)
def test_integers_stay_on_the_declared_lattice(backend: str) -> None:
    out = _synthetic(backend)
    for col in _schema().columns:
        if col.kind != "integer":
            continue
        values = pd.to_numeric(out[col.name], errors="raise").to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        if not col.missing:
            assert not missing.any(), f"{backend}: {col.name} has missing values it may not have"
        v = values[~missing]
        assert v.size > 0
        off = v[v != np.round(v)]
        assert off.size == 0, f"{backend}: {col.name} has non-integers {off[:5]}"
        assert col.lower is not None and col.upper is not None
        assert v.min() >= col.lower and v.max() <= col.upper, f"{backend}: {col.name} outside its bounds"


def _shares(column: pd.Series) -> dict[float, float]:
    """Share of all rows (missing ones in the denominator, not as a value) of each value."""
    counts = column.astype("float64").value_counts()  # drops missing values
    values = counts.index.to_numpy(dtype=np.float64).tolist()
    return dict(zip(values, (counts.to_numpy() / len(column)).tolist(), strict=True))


@pytest.mark.parametrize("backend", SPIKE_CASES)
def test_no_integer_value_far_above_its_real_share(backend: str) -> None:
    out, real = _synthetic(backend), _real_table()
    for name in NARROW:
        # Shares of all rows; the missing share is not an integer value and is left out (a briefly
        # trained VAE's missing indicator starts near 1/2: ~40% missing with the quick parameters).
        real_share, syn_share = _shares(real[name]), _shares(out[name])
        excess = {
            value: round(share - real_share.get(value, 0.0), 3)
            for value, share in syn_share.items()
            if share - real_share.get(value, 0.0) > SPIKE_TOL
        }
        assert not excess, f"{backend}: {name} values far above their real share: {excess}"
