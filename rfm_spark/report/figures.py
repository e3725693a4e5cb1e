"""The report's charts: small pandas aggregates in, PNG bytes out (matplotlib, no display).

Segments keep one order (the scheme's) and one colour each in every chart and every run: the
colour is taken by the segment's place in the scheme, not by what a snapshot happens to hold.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display needed on a cluster's driver

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

# 40 distinct colours; a segment's colour is the one at its place in the scheme
PALETTE: tuple[str, ...] = tuple(
    to_hex(c) for name in ("tab20", "tab20b") for c in plt.get_cmap(name)(range(20))
)
OTHER = "#9e9e9e"
DPI = 110


def display_name(segment: str) -> str:
    """``cannot_lose_them`` -> ``Cannot Lose Them``."""
    return segment.replace("_", " ").strip().title() if segment else "(none)"


def colours(scheme_segments: Sequence[str]) -> dict[str, str]:
    """One fixed colour per segment, by its place in the scheme."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(scheme_segments)}


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def segment_bars(sizes: pd.DataFrame, scheme_segments: Sequence[str]) -> bytes:
    """Share of customers beside share of revenue per segment, in the scheme's order.

    Args:
        sizes: ``segment``, ``customers``, ``revenue`` of one snapshot.
    """
    order = [s for s in scheme_segments if s in set(sizes["segment"])]
    order += sorted(set(sizes["segment"]) - set(order))
    data = sizes.set_index("segment").reindex(order)
    palette = colours(scheme_segments)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(order) + 1.6), sharey=True)
    labels = [display_name(s) for s in order]
    bar_colours = [palette.get(s, OTHER) for s in order]
    for ax, column, title in (
        (axes[0], "customers", "Share of customers (%)"),
        (axes[1], "revenue", "Share of revenue (%)"),
    ):
        total = data[column].sum()  # the table's shares: a segment's negative spend counts
        share = (100 * data[column] / total if total else data[column] * 0).clip(lower=0)
        ax.barh(labels, share, color=bar_colours)
        ax.set_xlabel(title)
        for y, v in enumerate(share):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlim(0, max(share.max() * 1.18, 1))
    axes[0].invert_yaxis()  # the axes share y: once turns both (scheme order top down)
    fig.suptitle("Segments: customers and revenue")
    return _png(fig)


def rf_heatmap(grid: pd.DataFrame, bins: int) -> bytes:
    """Customers per (R, F) score cell, each cell annotated with its mean spend.

    Args:
        grid: ``r_score``, ``f_score``, ``customers``, ``mean_monetary``.
    """
    counts = np.zeros((bins, bins))
    means = np.full((bins, bins), np.nan)
    for row in grid.to_dict("records"):
        r, f = int(row["r_score"]), int(row["f_score"])
        if 1 <= r <= bins and 1 <= f <= bins:
            counts[bins - r, f - 1] = row["customers"]
            means[bins - r, f - 1] = row["mean_monetary"]
    fig, ax = plt.subplots(figsize=(1.2 * bins + 2.2, 1.0 * bins + 1.2))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label="customers")
    top = counts.max() or 1
    for i in range(bins):
        for j in range(bins):
            text = f"{int(counts[i, j]):,}"
            if not np.isnan(means[i, j]):
                text += f"\n{means[i, j]:,.0f}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=7,
                color="white" if counts[i, j] > top * 0.6 else "black",
            )  # fmt: skip
    ax.set_xticks(range(bins), [str(f) for f in range(1, bins + 1)])
    ax.set_yticks(range(bins), [str(r) for r in range(bins, 0, -1)])
    ax.set_xlabel("F score (1 = fewest orders)")
    ax.set_ylabel(f"R score ({bins} = most recent)")
    ax.set_title("Customers per R x F cell (second line: mean spend)")
    return _png(fig)


def histogram_chart(
    counts: pd.DataFrame, edges: Sequence[float], *, title: str, xlabel: str, log: bool
) -> bytes:
    """Customers per bin as bars on the bins' true widths (a log axis for ``log``).

    Args:
        counts: ``bin``, ``customers`` (bin -1, values below the first edge, is left out and
            reported in the title).
    """
    by_bin = dict(zip(counts["bin"], counts["customers"], strict=True))
    below = int(by_bin.pop(-1, 0))
    lefts = np.array(edges[:-1])
    widths = np.diff(np.array(edges))
    heights = [by_bin.get(i, 0) for i in range(len(lefts))]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(lefts, heights, width=widths, align="edge", color="#4c72b0", edgecolor="white")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    ax.set_title(title + (f" ({below:,} below {edges[0]:g}, not drawn)" if below else ""))
    return _png(fig)


def transition_heatmap(matrix: pd.DataFrame, scheme_segments: Sequence[str]) -> bytes:
    """Customers per (from, to) segment, coloured by the share of the from-row.

    Args:
        matrix: ``from_segment``, ``to_segment``, ``customers``, ``share``.
    """
    rows = _label_order(matrix["from_segment"], scheme_segments)
    cols = _label_order(matrix["to_segment"], scheme_segments)
    share = matrix.pivot(index="from_segment", columns="to_segment", values="share")
    count = matrix.pivot(index="from_segment", columns="to_segment", values="customers")
    share = share.reindex(index=rows, columns=cols).fillna(0.0)
    count = count.reindex(index=rows, columns=cols).fillna(0).astype(int)
    fig, ax = plt.subplots(figsize=(0.75 * len(cols) + 3, 0.5 * len(rows) + 2))
    image = ax.imshow(share.to_numpy(), cmap="Oranges", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the earlier segment")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if count.iat[i, j]:
                ax.text(j, i, f"{count.iat[i, j]:,}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), [display_name(c) for c in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [display_name(r) for r in rows])
    ax.set_xlabel("segment in the later snapshot")
    ax.set_ylabel("segment in the earlier snapshot")
    ax.set_title("Transitions: customers from each segment to each segment")
    return _png(fig)


def _label_order(labels: pd.Series, scheme_segments: Sequence[str]) -> list[str]:
    """The labels present in the scheme's order, the others (``(new)``, ``(gone)``) after."""
    present = set(labels)
    known = [s for s in scheme_segments if s in present]
    return known + sorted(present - set(known))


def cluster_chart(profile: pd.DataFrame) -> bytes:
    """Mean recency, frequency and spend per k-means cluster, side by side.

    Args:
        profile: ``cluster_id``, ``cluster_name``, ``customers``, ``mean_recency``,
            ``mean_frequency``, ``mean_monetary``.
    """
    data = profile.sort_values("cluster_id")
    labels = [
        f"{int(c)}: {n or ''}".strip()
        for c, n in zip(data["cluster_id"], data["cluster_name"], strict=True)
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 0.4 * len(labels) + 1.8), sharey=True)
    panels: list[tuple[Axes, str, str]] = [
        (axes[0], "mean_recency", "mean recency (days)"),
        (axes[1], "mean_frequency", "mean frequency (orders)"),
        (axes[2], "mean_monetary", "mean spend"),
    ]
    for ax, column, xlabel in panels:
        ax.barh(
            labels, data[column], color=[PALETTE[int(c) % len(PALETTE)] for c in data["cluster_id"]]
        )
        ax.set_xlabel(xlabel)
    axes[0].invert_yaxis()
    fig.suptitle("k-means clusters: mean features")
    return _png(fig)
