"""The evaluation report's figures: matplotlib (imported lazily), rendered to PNG bytes.

Every function takes the ``results`` dict of :class:`~tabpriv.evaluation.report.EvaluationReport`
(computed from the private data: the figures are for the data owner only, like the report).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

__all__ = ["distributions_figure", "heatmap_figure", "roc_figure"]

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


def distributions_figure(results: dict[str, Any]) -> bytes:
    """Per-column distributions, real vs synthetic, as PNG bytes."""
    from matplotlib.figure import Figure

    dists: dict[str, Any] = results["distributions"]
    per_col = results["marginals"]["one_way"]["per_column"]
    names = list(dists)
    ncols = 3
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(5.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_axis_off()
            continue
        name = names[k]
        d = dists[name]
        labels, r, s = list(d["labels"]), np.array(d["real"]), np.array(d["synthetic"])
        if d["kind"] == "categorical" and len(labels) > 12:
            order = np.argsort(-(r + s), kind="stable")
            top, rest = order[:11], order[11:]
            labels = [labels[i] for i in top] + [f"other ({len(rest)})"]
            r = np.r_[r[top], r[rest].sum()]
            s = np.r_[s[top], s[rest].sum()]
        x = np.arange(len(labels))
        w = 0.4
        ax.bar(x - w / 2, r, w, label="real", color=_REAL_COLOR)
        ax.bar(x + w / 2, s, w, label="synthetic", color=_SYN_COLOR)
        ax.set_title(f"{name}  (TVD {per_col[name]:.3f})", fontsize=11)
        ax.set_ylabel("share of rows", fontsize=9)
        short = [lab if len(lab) <= 18 else lab[:16] + "…" for lab in labels]
        if d["kind"] != "categorical" and len(labels) > 8:
            step = math.ceil(len(labels) / 6)
            ticks = list(range(0, len(labels), step))
            ax.set_xticks(ticks, [short[i] for i in ticks], rotation=30, ha="right", fontsize=8)
        else:
            ax.set_xticks(
                x,
                short,
                rotation=45 if len(labels) > 3 else 0,
                ha="right" if len(labels) > 3 else "center",
                fontsize=8,
            )
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.legend(fontsize=9)
    return _png(fig)


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
