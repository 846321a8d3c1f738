"""The VAE backends' binned number heads (``tabpriv.backends.vae.common``): layout, targets, sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from tabpriv.backends.vae.common import SpanLayout, decode_rows, recon_loss  # noqa: E402
from tabpriv.schema import Column, Schema  # noqa: E402
from tabpriv.transformers import ColumnSpan, TableTransformer  # noqa: E402
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS, keeps_values  # noqa: E402

from ..conftest import make_small_df, make_small_schema  # noqa: E402


def decoder_out_width(spans: tuple[ColumnSpan, ...], numeric_bins: int = 20, max_levels: int = 100) -> int:
    """Decoder outputs, computed here from the rule: the row, plus each number's bins.

    An integer column with at most ``max(100, numeric_bins)`` values has one bin per value.
    """
    out = spans[-1].stop
    for span in spans:
        wide = max(max_levels, numeric_bins)
        if span.kind == "integer" and span.n_levels is not None and span.n_levels <= wide:
            out += span.n_levels
        elif span.kind != "categorical":
            out += span.bins or numeric_bins
    return out


def _schema() -> Schema:
    return Schema(
        [
            Column("kids", "integer", lower=0, upper=4),  # 5 values: exact bins
            Column("age", "integer", lower=0, upper=100),  # 101 values: 20 equal-width bins
            Column("wage", "continuous", lower=0.0, upper=10.0, missing=True, bins=8),
            Column("sex", "categorical", categories=["f", "m"]),
        ]
    )


def test_layout_heads_follow_the_rule() -> None:
    spans = TableTransformer(_schema()).fit().spans_
    lay = SpanLayout.from_spans(spans, numeric_bins=20)
    kids, age, wage = lay.numeric
    assert (kids.n_bins, kids.exact, kids.missing) == (5, True, None)
    assert (age.n_bins, age.exact) == (20, False)
    assert (wage.n_bins, wage.exact, wage.missing) == (8, False, wage.index + 1)  # schema's hint
    assert lay.out_width == decoder_out_width(spans) == lay.width + 5 + 20 + 8
    assert kids.offset == lay.width and age.offset == lay.width + 5 and wage.offset == lay.width + 25
    # numeric_bins = 0: the regression head, no extra outputs
    reg = SpanLayout.from_spans(spans, numeric_bins=0)
    assert reg.numeric == () and reg.out_width == reg.width


def test_exact_bins_round_trip_every_integer_value() -> None:
    tt = TableTransformer(_schema()).fit()
    df = pd.DataFrame(
        {
            "kids": pd.array([0, 1, 2, 3, 4], dtype="Int64"),
            "age": pd.array([0, 25, 50, 75, 99], dtype="Int64"),
            "wage": [0.0, 2.5, np.nan, 7.5, 10.0],
            "sex": ["f", "m", "f", "m", "f"],
        }
    )
    x = torch.as_tensor(tt.transform(df).data)
    lay = SpanLayout.from_spans(tt.spans_, numeric_bins=20)
    kids, age, _ = lay.numeric
    assert kids.target(x[:, kids.index]).tolist() == [0, 1, 2, 3, 4]
    # exact value of a bin maps back to the same encoded value
    back = kids.value(kids.target(x[:, kids.index]), torch.Generator().manual_seed(0))
    assert torch.allclose(back, x[:, kids.index])
    # equal-width bins: [-1, 1] cut into 20; the top bound falls in the last bin
    assert age.target(x[:, age.index]).tolist() == [0, 5, 10, 15, 19]


def test_decoded_number_lies_in_its_bin_and_missing_is_zero() -> None:
    tt = TableTransformer(_schema()).fit()
    lay = SpanLayout.from_spans(tt.spans_, numeric_bins=20)
    kids, age, wage = lay.numeric
    n = 4000
    logits = torch.full((n, lay.out_width), -30.0)
    logits[:, kids.offset + 3] = 30.0  # kids = 3 always
    logits[:, age.offset + 7] = 30.0  # age in bin 7: encoded [-0.3, -0.2)
    logits[:, wage.offset : wage.offset + wage.n_bins] = 0.0  # wage: uniform over 8 bins
    logits[:, wage.missing] = 0.0  # missing with probability 1/2
    for a, _ in lay.softmax:
        logits[:, a] = 30.0
    rows = torch.as_tensor(decode_rows(logits, lay, torch.Generator().manual_seed(1)))
    assert torch.allclose(rows[:, kids.index], torch.full((n,), 0.5))  # 3 of 0..4 -> 0.5
    a = rows[:, age.index]
    assert bool(((a >= -0.3 - 1e-6) & (a < -0.2 + 1e-6)).all())
    miss = rows[:, wage.missing] == 1.0
    assert abs(float(miss.float().mean()) - 0.5) < 0.03  # 4000 draws: sd 0.008
    assert bool((rows[miss, wage.index] == 0.0).all())
    w = rows[~miss, wage.index]
    counts = np.bincount(wage.target(w).numpy(), minlength=8) / len(w)
    assert np.abs(counts - 1 / 8).max() < 0.03  # ~2000 draws per 8 bins: sd 0.007


def test_loss_is_bin_cross_entropy_and_ignores_missing_values() -> None:
    tt = TableTransformer(_schema()).fit()
    lay = SpanLayout.from_spans(tt.spans_, numeric_bins=20)
    df = pd.DataFrame(
        {
            "kids": pd.array([2, 2], dtype="Int64"),
            "age": pd.array([50, 50], dtype="Int64"),
            "wage": [5.0, np.nan],
            "sex": ["f", "f"],
        }
    )
    x = torch.as_tensor(tt.transform(df).data)
    logits = torch.zeros((2, lay.out_width))
    loss = recon_loss(logits, x, lay)
    # uniform logits: log(5) + log(20) + [log(8) if observed] + log(2) (sex) + BCE(0.5) (indicator)
    base = np.log(5) + np.log(20) + np.log(2) + np.log(2)
    assert loss.tolist() == pytest.approx([base + np.log(8), base], abs=1e-5)


def test_small_table_layout_matches_rule() -> None:
    spans = TableTransformer(make_small_schema()).fit().transform(make_small_df(50)).spans
    assert SpanLayout.from_spans(spans, numeric_bins=20).out_width == decoder_out_width(spans)


@pytest.mark.parametrize("bad", [1, -1, True, 2.5, "20", None])
def test_numeric_bins_is_validated_by_every_vae_backend(bad: object) -> None:
    from tabpriv import Synthesizer
    from tabpriv.errors import PrivacyParameterError

    df = make_small_df(60)
    for backend in ("dp2-vae", "dpsgd-vae", "lipschitz-vae"):
        synth = Synthesizer(
            backend=backend, epsilon=5.0, schema=make_small_schema(), random_state=0,
            backend_params={"numeric_bins": bad},
        )  # fmt: skip
        with pytest.raises(PrivacyParameterError, match=r"numeric_bins must be 0 .* got"):
            synth.fit(df)


# -- integer columns keep one level per value up to DEFAULT_MAX_LEVELS (issue 18) -------------------
def _int_spans(*widths: int) -> tuple[ColumnSpan, ...]:
    cols = [Column(f"i{k}", "integer", lower=0, upper=w - 1) for k, w in enumerate(widths)]
    return TableTransformer(Schema(cols)).fit().spans_


def test_integer_columns_up_to_100_values_get_one_bin_per_value() -> None:
    # 21 values (years of schooling 0-20: one more than numeric_bins = 20), 100 and 101 values
    school, hundred, wide = SpanLayout.from_spans(_int_spans(21, 100, 101), numeric_bins=20).numeric
    assert (school.exact, school.n_bins) == (True, 21)
    assert (hundred.exact, hundred.n_bins) == (True, 100)
    assert (wide.exact, wide.n_bins) == (False, 20)
    # numeric_bins above 100 widens the rule; integer_levels=0 is the rule of older saved files
    assert SpanLayout.from_spans(_int_spans(150), numeric_bins=200).numeric[0].exact
    legacy = SpanLayout.from_spans(_int_spans(21, 20), numeric_bins=20, integer_levels=0).numeric
    assert [(h.exact, h.n_bins) for h in legacy] == [(False, 20), (True, 20)]


def test_levels_rule_is_the_marginal_backends_rule() -> None:
    from tabpriv.backends.marginal.domain import DEFAULT_MAX_LEVELS as MARGINAL_MAX_LEVELS
    from tabpriv.backends.marginal.domain import MarginalDomain

    assert DEFAULT_MAX_LEVELS == MARGINAL_MAX_LEVELS == 100
    extra = [Column(f"i{w}", "integer", lower=0, upper=w - 1) for w in (21, 100, 101)]
    spans = TableTransformer(Schema([*_schema().columns, *extra])).fit().spans_
    dom = MarginalDomain(spans)
    assert [keeps_values(s) for s in spans] == [c.mode == "value" for c in dom.columns]
    heads = {h.index: h.exact for h in SpanLayout.from_spans(spans, numeric_bins=20).numeric}
    for span, col in zip(spans, dom.columns, strict=True):
        if span.kind != "categorical":
            assert heads[span.start] == (col.mode == "value")


@settings(max_examples=60, deadline=None)
@given(lo=st.integers(-1000, 1000), n=st.integers(2, 100), data=st.data())
def test_exact_head_decodes_every_bin_to_its_own_value(lo: int, n: int, data: st.DataObject) -> None:
    """Property: bin b of an integer column with n <= 100 values decodes to exactly lo + b."""
    tt = TableTransformer(Schema([Column("v", "integer", lower=lo, upper=lo + n - 1)])).fit()
    (head,) = SpanLayout.from_spans(tt.spans_, numeric_bins=20).numeric
    assert head.exact and head.n_bins == n
    bins = torch.as_tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)))
    enc = head.value(bins, torch.Generator().manual_seed(0)).numpy()[:, None]
    out = tt.inverse_transform(enc)["v"].to_numpy(dtype=np.int64)
    assert out.tolist() == (lo + bins.numpy()).tolist()
    # and the encoded value maps back to its own bin
    assert head.target(torch.as_tensor(enc[:, 0])).tolist() == bins.tolist()


def _lattice_schema() -> Schema:
    return Schema(
        [
            Column("school", "integer", lower=0, upper=20),  # 21 values: one bin per value
            Column("kids", "integer", lower=-3, upper=9, missing=True),  # 13 values, may be missing
            Column("wide", "integer", lower=0, upper=299),  # 300 values: binned, then rounded
            Column("sex", "categorical", categories=["f", "m"]),
        ]
    )


def _lattice_df(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    school = rng.choice([0, 8, 12, 16, 20], size=n, p=[0.1, 0.2, 0.4, 0.2, 0.1])  # only 5 of 21 values
    kids = pd.array(np.where(rng.random(n) < 0.2, -99, rng.integers(-3, 10, size=n)), dtype="Int64")
    kids[kids == -99] = pd.NA
    wide = rng.integers(0, 300, size=n)
    sex = rng.choice(["f", "m"], size=n)
    return pd.DataFrame({"school": school, "kids": kids, "wide": wide, "sex": sex}).astype({"sex": object})


@pytest.mark.parametrize("backend", ["dp2-vae", "dpsgd-vae", "lipschitz-vae"])
def test_no_vae_backend_emits_an_integer_off_the_declared_lattice(backend: str) -> None:
    """Tiny fits: every sampled integer is a whole number within its bounds, and the encoded output of a
    one-bin-per-value column lies exactly on its lattice (no rounding needed)."""
    from tabpriv import Synthesizer
    from tabpriv.backends import get_backend_class

    torch.set_num_threads(1)
    schema = _lattice_schema()
    params = dict(get_backend_class(backend).quick_params)
    synth = Synthesizer(backend=backend, epsilon=5.0, schema=schema, random_state=0, backend_params=params)
    synth.fit(_lattice_df())
    out = synth.sample(2000)
    for col in schema.columns:
        if col.kind != "integer":
            continue
        v = out[col.name].dropna().to_numpy(dtype=np.float64)
        assert v.size > 0
        assert bool((v == np.round(v)).all()), col.name
        assert bool(((v >= col.lower) & (v <= col.upper)).all()), col.name
    # encoded level: the exact heads put every value on k / (n - 1) * 2 - 1
    enc = synth.backend_.sample(2000, seed=1)
    spans = {s.name: s for s in synth.transformer_.spans_}
    for name in ("school", "kids"):
        span = spans[name]
        assert span.n_levels is not None and keeps_values(span)
        x = enc[:, span.start].astype(np.float64)
        # kids may be missing, encoded 0 = the middle of its 13 values' lattice, so it is checked too
        k = (x + 1.0) / 2.0 * (span.n_levels - 1)
        assert np.abs(k - np.round(k)).max() < 1e-4, name
        assert k.min() >= -1e-6 and k.max() <= span.n_levels - 1 + 1e-6, name


@pytest.mark.parametrize(
    ("backend", "module"), [("dp2-vae", "dp2"), ("dpsgd-vae", "dpsgd"), ("lipschitz-vae", "lipschitz")]
)
def test_files_saved_before_the_rule_load_with_the_old_layout(
    backend: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state without ``integer_levels`` (saved before the rule) has the old heads and still samples."""
    import importlib

    from tabpriv import Synthesizer
    from tabpriv.backends import get_backend_class

    torch.set_num_threads(1)
    mod = importlib.import_module(f"tabpriv.backends.vae.{module}")
    monkeypatch.setattr(mod, "DEFAULT_MAX_LEVELS", 0)  # fit as before: exact only up to numeric_bins
    cls = get_backend_class(backend)
    synth = Synthesizer(backend=backend, epsilon=5.0, schema=_lattice_schema(), random_state=0,
                        backend_params=dict(cls.quick_params))  # fmt: skip
    synth.fit(_lattice_df())
    monkeypatch.undo()
    arrays, meta = synth.backend_.get_state()
    assert meta.pop("integer_levels") == 0
    fresh = cls(**synth.backend_.get_params())
    fresh.set_state(arrays, meta)
    assert fresh.integer_levels_ == 0
    enc = fresh.sample(50, seed=0)
    assert enc.shape == (50, synth.transformer_.spans_[-1].stop)
    # the new rule would need more decoder outputs than the old file has: 21 vs 20 bins for "school"
    spans = synth.transformer_.spans_
    old = SpanLayout.from_spans(spans, numeric_bins=20, integer_levels=0)
    assert SpanLayout.from_spans(spans, numeric_bins=20).out_width == old.out_width + 1
