"""What a report says: the collected aggregates and the findings read from them.

Everything here works on small pandas frames already on the driver (see
:mod:`rfm_spark.pipeline.report`); the findings are plain sentences a marketer can act on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rfm_spark.report.figures import display_name
from rfm_spark.transitions import GONE, NEW

# a segment is "small but valuable" when it holds at most this share of the customers and at
# least VALUE_RATIO times as large a share of the revenue
SMALL_SHARE = 0.10
VALUE_RATIO = 2.0


@dataclass(frozen=True)
class Histogram:
    """Customers per bin of one feature."""

    feature: str
    edges: list[float]
    counts: pd.DataFrame  # bin, customers
    log: bool


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, collected.

    Attributes:
        table: The ``customer_segments`` table read.
        snapshot: The snapshot reported on.
        previous: The latest snapshot before it (headline comparison), if any.
        earlier: The snapshot the transitions compare with (about ``days`` before), if any.
        earlier_note: Says why ``earlier`` is not exactly ``days`` before.
        scheme_segments: The scheme's segments in its order (chart order and colours).
        bins: Score bins.
        headline: One row per snapshot shown: ``snapshot_date``, ``customers``, ``revenue``,
            ``mean_monetary``, ``median_recency``.
        sizes: ``snapshot_date``, ``segment``, ``customers``, ``revenue``.
        grid: ``r_score``, ``f_score``, ``customers``, ``mean_monetary``.
        histograms: Recency, frequency and spend.
        outlier_floor: Spend above which a customer is an outlier (None: no spenders).
        outliers: The capped list of the highest outliers.
        outlier_total: ``outliers`` (all of them) and their ``revenue``.
        transitions: The matrix against ``earlier`` (None without one).
        clusters: Cluster profiles (None without clusters).
        attributes: ``dimension``, ``attribute``, ``segment``, ``customers`` (empty without
            attribute segments).
        predictions: Churn and CLV per segment (None when neither was scored for the snapshot).
        quarantine: ``reason``, ``rows`` of the snapshot's quarantine partition.
        score_ranges: ``axis``, ``score``, ``customers``, ``low``, ``high``.
        run: The decoded metadata of the commit that wrote the snapshot.
    """

    table: str
    snapshot: dt.date
    previous: dt.date | None
    earlier: dt.date | None
    earlier_note: str | None
    scheme_segments: tuple[str, ...]
    bins: int
    headline: pd.DataFrame
    sizes: pd.DataFrame
    grid: pd.DataFrame
    histograms: list[Histogram]
    outlier_floor: float | None
    outliers: pd.DataFrame
    outlier_total: dict[str, float]
    transitions: pd.DataFrame | None
    clusters: pd.DataFrame | None
    attributes: pd.DataFrame
    predictions: pd.DataFrame | None
    quarantine: pd.DataFrame
    score_ranges: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)

    def sizes_of(self, day: dt.date | None) -> pd.DataFrame:
        """``segment``, ``customers``, ``revenue`` of one snapshot (empty for None)."""
        rows = self.sizes[self.sizes["snapshot_date"] == day] if day else self.sizes.iloc[0:0]
        return rows[["segment", "customers", "revenue"]].reset_index(drop=True)


def segment_table(data: ReportData) -> list[dict[str, Any]]:
    """One row per segment of the snapshot in the scheme's order: customers, revenue, their
    shares, and the change in customers since the transitions' earlier snapshot."""
    now = {r["segment"]: r for r in data.sizes_of(data.snapshot).to_dict("records")}
    before = {r["segment"]: r for r in data.sizes_of(data.earlier).to_dict("records")}
    customers = sum(int(r["customers"]) for r in now.values())
    revenue = sum(float(r["revenue"] or 0) for r in now.values())
    present = set(now) | set(before)  # a segment that emptied since stays, with 0
    order = [s for s in data.scheme_segments if s in present]
    order += sorted(present - set(order))
    rows = []
    for s in order:
        n, spend = (
            int(now.get(s, {}).get("customers", 0)),
            float(now.get(s, {}).get("revenue") or 0),
        )
        rows.append(
            {
                "segment": s,
                "name": display_name(s),
                "customers": n,
                "customer_share": n / customers if customers else 0.0,
                "revenue": spend,
                "revenue_share": spend / revenue if revenue else 0.0,
                "change": n - int(before.get(s, {}).get("customers", 0)) if data.earlier else None,
            }
        )
    return rows


def largest_moves(matrix: pd.DataFrame, limit: int = 5) -> list[str]:
    """The largest movements between segments, in words ("412 Champions became At Risk")."""
    rows = [r for r in matrix.to_dict("records") if r["from_segment"] != r["to_segment"]]
    rows.sort(key=lambda r: (-int(r["customers"]), str(r["from_segment"]), str(r["to_segment"])))
    out = []
    for r in rows[:limit]:
        n, before, after = f"{int(r['customers']):,}", str(r["from_segment"]), str(r["to_segment"])
        if before == NEW:
            out.append(f"{n} new customers arrived as {display_name(after)}")
        elif after == GONE:
            out.append(f"{n} {display_name(before)} left the window (no purchase in it)")
        else:
            out.append(f"{n} {display_name(before)} became {display_name(after)}")
    return out


def small_but_valuable(rows: list[dict[str, Any]]) -> list[str]:
    """Segments small in customers but large in revenue, in words."""
    return [
        f"{r['name']}: {r['customer_share']:.1%} of customers, {r['revenue_share']:.1%} of revenue"
        for r in rows
        if r["customer_share"] <= SMALL_SHARE
        and r["revenue_share"] >= VALUE_RATIO * r["customer_share"]
        and r["revenue_share"] > 0
    ]


def biggest_changes(rows: list[dict[str, Any]], limit: int = 3) -> list[str]:
    """The segments whose number of customers changed most, in words."""
    changed = [r for r in rows if r["change"]]
    changed.sort(key=lambda r: (-abs(r["change"]), r["segment"]))
    out = []
    for r in changed[:limit]:
        before = r["customers"] - r["change"]
        pct = f" ({r['change'] / before:+.0%})" if before else ""
        out.append(f"{r['name']}: {before:,} -> {r['customers']:,} customers{pct}")
    return out


def attribute_grids(data: ReportData) -> list[dict[str, Any]]:
    """One grid per attribute dimension: RFM segments (scheme order) by attribute segments
    (by name), each cell's customers and share of its RFM segment."""
    grids = []
    for dimension, part in data.attributes.groupby("dimension", sort=True):
        cells = {(r["segment"], r["attribute"]): int(r["customers"]) for _, r in part.iterrows()}
        columns = sorted({a for _, a in cells})  # by name: bands such as 18-24, 25-34 in order
        present = {s for s, _ in cells}
        order = [s for s in data.scheme_segments if s in present]
        order += sorted(present - set(order))
        rows = []
        for segment in order:
            counts = [cells.get((segment, c), 0) for c in columns]
            total = sum(counts)
            shares = [n / total if total else 0.0 for n in counts]
            rows.append({"segment": segment, "cells": list(zip(counts, shares, strict=True)),
                         "total": total})  # fmt: skip
        grids.append({"dimension": str(dimension), "columns": columns,
                      "rows": rows})  # fmt: skip
    return grids


def prediction_rows(data: ReportData) -> list[dict[str, Any]]:
    """Churn and CLV per segment in the scheme's order (empty when nothing was scored)."""
    if data.predictions is None:
        return []
    by_segment = {r["segment"]: r for r in data.predictions.to_dict("records")}
    order = [s for s in data.scheme_segments if s in by_segment]
    order += sorted(set(by_segment) - set(order))

    def number(value: Any) -> float | None:
        return None if value is None or pd.isna(value) else float(value)

    return [
        {"segment": s, "customers": int(by_segment[s]["customers"]),
         **{k: number(by_segment[s][k]) for k in ("mean_churn", "high_risk", "mean_p_alive", "clv")}}
        for s in order
    ]  # fmt: skip
