"""The evaluation report's figures: matplotlib (imported lazily), rendered to PNG bytes.

Every function takes the ``results`` dict of :class:`~tabpriv.evaluation.report.EvaluationReport`
(computed from the private data: the figures are for the data owner only, like the report).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

__all__ = ["concentrated", "distributions_figure", "heatmap_figure", "roc_figure", "worst_pairs_figure"]

ATTACK_NAMES = {
    "dcr": "Distance to closest record",
    "density_ratio": "Density ratio (DOMIAS-style)",
    "classifier": "Classifier (synthetic vs reference)",
}
_REAL_COLOR = "#1f77b4"
_SYN_COLOR = "#ff7f0e"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


#: Longest tick label; longer names are cut with "…" and listed in full under the axis.
MAX_LABEL = 24
#: Categorical columns with more categories than this show their most frequent ones plus "other".
MAX_BARS = 16
#: Ordered axes with more levels than this label a thinned set of ticks (always first, last, mode).
MAX_TICKS = 12
#: The share axis is logarithmic when the two largest levels hold at least this share of the rows
#: (real or synthetic) and the column shows at least :data:`CONCENTRATED_MIN_LEVELS` levels.
CONCENTRATED_SHARE = 0.8
CONCENTRATED_MIN_LEVELS = 8
_SPECIAL = ("(missing)", "(out of schema)")
_LOG_LABEL = "share of rows (log scale: 2 levels hold ≥ 80%)"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _cut_note(labels: list[str]) -> str:
    """'full names: …' for the labels :func:`_short` cuts ('' when none is cut)."""
    cut = [lab for lab in labels if len(lab) > MAX_LABEL]
    return ("\nfull names: " + "; ".join(cut)) if cut else ""


def concentrated(*shares: np.ndarray) -> bool:
    """The rule for a log share axis: >= 8 levels and the 2 largest of one distribution hold >= 80%."""
    for p in shares:
        p = np.asarray(p, dtype=float).ravel()
        total = float(p.sum())
        if (
            p.size >= CONCENTRATED_MIN_LEVELS
            and total > 0
            and float(np.sort(p)[-2:].sum()) / total >= CONCENTRATED_SHARE
        ):
            return True
    return False


def _log_floor(*shares: np.ndarray) -> float:
    pos = np.concatenate([np.asarray(p, dtype=float).ravel() for p in shares])
    pos = pos[pos > 0]
    low = float(pos.min()) if pos.size else 1e-3
    return float(max(10.0 ** math.floor(math.log10(low)), 1e-6))


def _tick_positions(labels: list[str], real: np.ndarray, syn: np.ndarray) -> list[int]:
    """Every level when there are at most :data:`MAX_TICKS`, else a thinned set.

    The thinned set always holds the first and last level, the mode of the real distribution and the
    missing / out-of-schema levels; then the synthetic mode and every ``k``-th level (per-value
    integers: every multiple of ``k``), for the smallest ``k`` in 2, 5, 10, 20, 25, 50, 100 giving at
    most 10 of them, each only where it keeps a gap to the ticks already chosen (``k / 2`` levels for
    long labels, ``k / 3`` and at least 2 for labels of up to 3 characters, which are all labelled up
    to twice :data:`MAX_TICKS` levels).
    """
    main = [i for i, lab in enumerate(labels) if lab not in _SPECIAL]
    special = [i for i, lab in enumerate(labels) if lab in _SPECIAL]
    values = [labels[i] for i in main]
    if len(main) <= (2 * MAX_TICKS if bool(values) and max(len(v) for v in values) <= 3 else MAX_TICKS):
        return list(range(len(labels)))
    short = max(len(v) for v in values) <= 3
    n = len(main)
    k = next((s for s in (2, 5, 10, 20, 25, 50, 100) if math.ceil(n / s) <= 10), max(1, n // 10))
    gap = max(2.0, k / 3) if short else k / 2
    chosen = {main[0], main[-1], main[int(np.argmax(real[main]))]}
    if all(v.lstrip("-").isdigit() for v in values):  # one level per integer value: multiples of k
        regular = [i for i in main if int(labels[i]) % k == 0]
    else:
        regular = main[::k]
    for i in [main[int(np.argmax(syn[main]))], *regular]:
        if all(abs(i - c) >= gap for c in chosen):
            chosen.add(i)
    return sorted(chosen | set(special))


def _categorical_panel(ax: Any, labels: list[str], r: np.ndarray, s: np.ndarray) -> str:
    """Horizontal grouped bars, categories top to bottom; returns the share-axis label."""
    if len(labels) > MAX_BARS:
        main = [i for i, lab in enumerate(labels) if lab not in _SPECIAL]
        special = [i for i, lab in enumerate(labels) if lab in _SPECIAL]
        share = r + s
        top = sorted(sorted(main, key=lambda i: -share[i])[: MAX_BARS - 1])
        rest = [i for i in main if i not in top]
        labels = [labels[i] for i in top] + [f"other ({len(rest)})"] + [labels[i] for i in special]
        r = np.r_[r[top], r[rest].sum(), r[special]]
        s = np.r_[s[top], s[rest].sum(), s[special]]
    y = np.arange(len(labels))
    h = 0.4
    ax.barh(y - h / 2, r, h, label="real", color=_REAL_COLOR)
    ax.barh(y + h / 2, s, h, label="synthetic", color=_SYN_COLOR)
    ax.set_yticks(y, [_short(lab) for lab in labels], fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    if concentrated(r, s):
        ax.set_xscale("log")
        ax.set_xlim(left=_log_floor(r, s))
        return _LOG_LABEL + _cut_note(labels)
    return "share of rows" + _cut_note(labels)


def _ordered_panel(ax: Any, labels: list[str], r: np.ndarray, s: np.ndarray) -> str:
    """Vertical grouped bars over the ordered levels; returns the share-axis label."""
    # the missing / out-of-schema levels (last) stand apart from the ordered levels (5% of the axis)
    x = np.arange(len(labels), dtype=float)
    special = [i for i, lab in enumerate(labels) if lab in _SPECIAL]
    x[special] += max(1.0, math.ceil((len(labels) - len(special)) / 20))
    w = 0.4
    ax.bar(x - w / 2, r, w, label="real", color=_REAL_COLOR)
    ax.bar(x + w / 2, s, w, label="synthetic", color=_SYN_COLOR)
    ticks = _tick_positions(labels, r, s)
    tick_labels = [_short(labels[i]) for i in ticks]
    slant = max((len(t) for t in tick_labels), default=0) > 3
    ax.set_xticks(
        x[ticks], tick_labels, rotation=40 if slant else 0, ha="right" if slant else "center", fontsize=8
    )
    ax.set_xlim(-0.7, float(x[-1]) + 0.7)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="y", labelsize=8)
    if concentrated(r, s):
        ax.set_yscale("log")
        ax.set_ylim(bottom=_log_floor(r, s))
        return _LOG_LABEL
    return "share of rows"


def distributions_figure(results: dict[str, Any]) -> bytes:
    """Per-column distributions, real vs synthetic, as PNG bytes.

    Categorical columns are horizontal bars (names up to 24 characters, longer ones cut and listed
    in full under the panel; more than 16 categories: the 15 most frequent plus "other"); numbers are
    vertical bars over their levels, every level labelled up to 12 levels, else a thinned set that
    always labels the first and last level and the modes. A column whose two largest levels hold at
    least 80% of the rows (and that shows at least 8 levels) gets a logarithmic share axis, said so
    on the axis.
    """
    from matplotlib.figure import Figure

    dists: dict[str, Any] = results["distributions"]
    per_col = results["marginals"]["one_way"]["per_column"]
    names = list(dists)
    ncols = 3
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(5.4 * ncols, 3.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_axis_off()
            continue
        name = names[k]
        d = dists[name]
        labels, r, s = list(d["labels"]), np.array(d["real"]), np.array(d["synthetic"])
        if d["kind"] == "categorical":
            ax.set_xlabel(_categorical_panel(ax, labels, r, s), fontsize=9)
        else:
            ax.set_ylabel(_ordered_panel(ax, labels, r, s), fontsize=9)
        ax.set_title(f"{name}  (TVD {per_col[name]:.3f})", fontsize=11)
        if k == 0:
            ax.legend(fontsize=9)
    return _png(fig)


def worst_pairs_figure(results: dict[str, Any]) -> bytes | None:
    """The worst 2-way marginals: real, synthetic and their difference as heatmaps (PNG bytes).

    One row per pair of ``results["worst_pairs"]`` (see
    :func:`tabpriv.evaluation.pairs.worst_pair_tables`), titled with its TVD; the axis with more
    levels is drawn vertically. Real and synthetic share one colour scale: square-root (small cells
    stay visible next to a large one), or logarithmic when the two largest cells of one of them hold
    at least 80% of the rows (empty cells grey); the colour bar says which. The third panel is
    synthetic − real on a symmetric linear scale. Cells are annotated with their percentage when a
    table has at most 48 cells. ``None`` when there is no pair.
    """
    from matplotlib.colors import LogNorm, PowerNorm, TwoSlopeNorm
    from matplotlib.figure import Figure

    pairs = results.get("worst_pairs") or []
    if not pairs:
        return None
    heights = []
    for p in pairs:
        ny = max(np.array(p["real"]).shape)  # the longer axis is drawn vertically
        heights.append(0.2 * ny + 2.6)
    fig = Figure(figsize=(16.0, sum(heights)), layout="constrained")
    subfigs = fig.subfigures(len(pairs), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, p in zip(subfigs, pairs, strict=True):
        real, syn = np.array(p["real"], dtype=float), np.array(p["synthetic"], dtype=float)
        ylab, xlab = p["labels"]
        ycol, xcol = p["columns"]
        if real.shape[1] > real.shape[0]:
            real, syn, ylab, xlab, ycol, xcol = real.T, syn.T, xlab, ylab, xcol, ycol
        ny, nx = real.shape
        vmax = max(float(real.max()), float(syn.max()), 1e-12)
        if concentrated(real, syn):
            norm: Any = LogNorm(vmin=min(_log_floor(real, syn), vmax / 10), vmax=vmax)
            cbar_label = "share of rows (log colour scale:\n2 cells hold ≥ 80%; grey: no rows)"
        else:
            norm = PowerNorm(0.5, vmin=0.0, vmax=vmax)
            cbar_label = "share of rows (square-root colour scale)"
        diff = syn - real
        d = max(float(np.abs(diff).max()), 1e-12)
        axes = sub.subplots(1, 3)
        cmap = _cmap("viridis")
        for ax, table, what in ((axes[0], real, "real"), (axes[1], syn, "synthetic")):
            shown = np.ma.masked_less_equal(table, 0.0) if isinstance(norm, LogNorm) else table
            im = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
            ax.set_title(what, fontsize=10)
            _annotate(ax, table, nx * ny)
        sub.colorbar(im, ax=list(axes[:2]), label=cbar_label, shrink=0.9)
        im_d = axes[2].imshow(
            diff, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -d, d), aspect="auto", interpolation="nearest"
        )
        axes[2].set_title("synthetic − real", fontsize=10)
        _annotate(axes[2], diff, nx * ny, signed=True)
        sub.colorbar(im_d, ax=axes[2], label="difference of shares", shrink=0.9)
        slant = max(len(lab) for lab in xlab) > 3
        for k, ax in enumerate(axes):
            ax.set_xticks(
                range(nx),
                [_short(lab) for lab in xlab],
                rotation=45 if slant else 0,
                ha="right" if slant else "center",
                fontsize=8,
            )
            ax.set_yticks(range(ny), [_short(lab) for lab in ylab] if k == 0 else [], fontsize=8)
            ax.set_xlabel(xcol + (_cut_note(xlab) if k == 0 else ""), fontsize=9)
            if k == 0:
                ax.set_ylabel(ycol + _cut_note(ylab), fontsize=9)
        title = f"{p['columns'][0]} × {p['columns'][1]}: 2-way TVD {p['tvd']:.3f}"
        if p.get("notes"):
            title += f"  (as shown: {p['tvd_shown']:.3f}; " + "; ".join(p["notes"]) + ")"
        sub.suptitle(title, fontsize=11)
    return _png(fig)


def _cmap(name: str) -> Any:
    import matplotlib as mpl

    return mpl.colormaps[name].with_extremes(bad="#dddddd")


def _annotate(ax: Any, table: np.ndarray, cells: int, signed: bool = False) -> None:
    if cells > 48:
        return
    for (i, j), v in np.ndenumerate(table):
        text = f"{100 * v:+.1f}%" if signed else f"{100 * v:.1f}%"
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=7,
            color="black",
            alpha=0.85,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "alpha": 0.5, "lw": 0},
        )


def heatmap_figure(results: dict[str, Any]) -> bytes:
    """The 2-way TVD matrix (diagonal: 1-way) as a PNG heatmap."""
    from matplotlib.figure import Figure

    two = results["marginals"]["two_way"]
    names = two["columns"]
    m = np.array(two["matrix"], dtype=float)
    one = results["marginals"]["one_way"]["per_column"]
    for i, n in enumerate(names):
        m[i, i] = one[n]
    p = len(names)
    size = max(4.5, 0.55 * p + 2.5)
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.subplots()
    vmax = max(float(m.max()), 0.05)
    im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(p), names, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(p), names, fontsize=9)
    if p <= 20:
        for i in range(p):
            for j in range(p):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] < 0.6 * vmax else "black",
                )
    ax.set_title("Total variation distance of 2-way marginals (diagonal: 1-way)")
    fig.colorbar(im, ax=ax, label="TVD (0 = identical)", shrink=0.8)
    return _png(fig)


def roc_figure(results: dict[str, Any]) -> bytes | None:
    """Membership-inference ROC curves (linear and log-log) as PNG bytes; ``None`` without attacks."""
    from matplotlib.figure import Figure

    attacks = results.get("membership", {}).get("attacks")
    if not attacks:
        return None
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_lin, ax_log = fig.subplots(1, 2)
    res = 1.0 / max(int(results["membership"]["n_non_members"]), 1)
    for key, a in attacks.items():
        fpr, tpr = np.array(a["roc"]["fpr"]), np.array(a["roc"]["tpr"])
        label = f"{ATTACK_NAMES.get(key, key)} (AUC {a['auc']:.3f})"
        ax_lin.plot(fpr, tpr, label=label, lw=2)
        ax_log.plot(np.maximum(fpr, res), np.maximum(tpr, res), label=label, lw=2)
    ax_lin.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax_log.plot([res, 1], [res, 1], "k--", lw=1, label="chance")
    ax_lin.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title="Membership inference ROC (linear)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax_log.set(
        xscale="log",
        yscale="log",
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title="Same, log-log (low-FPR regime)",
        xlim=(res, 1),
        ylim=(res, 1),
    )
    for ax in (ax_lin, ax_log):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return _png(fig)
