"""Each backfill snapshot's view of the span read once: its rows, reconciliation and scoring.

A backfill reads the input of all its snapshots in one pass; these functions split what that
pass counted and planned back into what a ``segment`` run of each date would have reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.scoring import ScoringInfo
from rfm_spark.validation import DUPLICATE


@dataclass(frozen=True)
class WindowRows:
    """Valid input rows of a backfill span seen from one snapshot."""

    used: int
    duplicates: int  # extra copies of rows in the window (quarantined)
    before: int  # before the window (copies included)
    after: int  # on or after the snapshot (copies included)


def rows_per_window(
    daily: DataFrame, dates: Sequence[dt.date], lookback: int
) -> tuple[dict[dt.date, WindowRows], int]:
    """Rows per snapshot window and the extra copies in the whole span.

    One aggregation over the cached daily aggregates counts every window, instead of one
    pass per snapshot.

    Args:
        daily: The daily aggregates of the span (``lines`` and ``duplicates`` per day).
        dates: The snapshots.
        lookback: The window length in days.

    Returns:
        The rows of each snapshot's window, and the extra copies in the span.
    """
    day, every = F.col("order_date"), F.col("lines") + F.col("duplicates")
    aggs = [F.sum("duplicates").alias("span_duplicates")]
    for i, snap in enumerate(dates):
        inside = (day >= F.lit(snap - dt.timedelta(days=lookback))) & (day < F.lit(snap))
        aggs += [
            F.sum(F.when(inside, F.col("lines"))).alias(f"u{i}"),
            F.sum(F.when(inside, F.col("duplicates"))).alias(f"d{i}"),
            F.sum(F.when(day < F.lit(snap - dt.timedelta(days=lookback)), every)).alias(f"b{i}"),
            F.sum(F.when(day >= F.lit(snap), every)).alias(f"a{i}"),
        ]
    row = daily.agg(*aggs).collect()[0]
    windows = {
        snap: WindowRows(*(int(row[f"{k}{i}"] or 0) for k in "udba"))
        for i, snap in enumerate(dates)
    }
    return windows, int(row["span_duplicates"] or 0)


def window_reconciliation(span: Reconciliation, window: WindowRows) -> Reconciliation:
    """Where the span's input rows went, seen from one snapshot.

    Rows the span read but the window does not cover count as outside the window, and only
    the window's own duplicates count as quarantined duplicates; the other bad rows are the
    span's.
    """
    bad = {r: n for r, n in span.quarantined.items() if r != DUPLICATE}
    return Reconciliation(
        input_rows=span.input_rows,
        used=window.used,
        before_window=span.before_window + window.before,
        after_snapshot=span.after_snapshot + window.after,
        quarantined={**bad, **({DUPLICATE: window.duplicates} if window.duplicates else {})},
    )


def info_of_snapshot(info: ScoringInfo, snap: dt.date, groups: Sequence[str]) -> ScoringInfo:
    """The scoring info of one snapshot of a backfill.

    The backfill scores with the snapshot as the first scoring group, so its groups are keyed
    ``"<date>|<group>"``; this keeps one date's and drops the date from the keys, as a
    ``segment`` run of that date would record them.
    """
    prefix = snap.isoformat()

    def pick(per_axis: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for axis, per_group in per_axis.items():
            out[axis] = {}
            for key, value in per_group.items():
                if key == "" or key == prefix or key.startswith(prefix + "|"):
                    out[axis][key[len(prefix) + 1 :] if key.startswith(prefix) else key] = value
        return out

    return replace(
        info,
        partition_by=tuple(groups),
        cut_points=pick(info.cut_points),
        collapsed=pick(info.collapsed),
    )
