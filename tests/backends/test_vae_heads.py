"""The VAE backends' binned number heads (``tabpriv.backends.vae.common``): layout, targets, sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from tabpriv.backends.vae.common import SpanLayout, decode_rows, recon_loss  # noqa: E402
from tabpriv.schema import Column, Schema  # noqa: E402
from tabpriv.transformers import ColumnSpan, TableTransformer  # noqa: E402

from ..conftest import make_small_df, make_small_schema  # noqa: E402


def decoder_out_width(spans: tuple[ColumnSpan, ...], numeric_bins: int = 20) -> int:
    """Decoder outputs, computed here from the rule: the row, plus each number's bins."""
    out = spans[-1].stop
    for span in spans:
        if span.kind == "integer" and span.n_levels is not None and span.n_levels <= numeric_bins:
            out += span.n_levels
        elif span.kind != "categorical":
            out += span.bins or numeric_bins
    return out


def _schema() -> Schema:
    return Schema(
        [
            Column("kids", "integer", lower=0, upper=4),  # 5 values: exact bins
            Column("age", "integer", lower=0, upper=99),  # 100 values: 20 equal-width bins
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
