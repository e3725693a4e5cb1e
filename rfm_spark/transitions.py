"""Segment transitions between two snapshots of ``customer_segments``.

``rfm-spark transitions --as-of D --days 14`` compares the snapshot of ``D`` with the latest
snapshot on or before ``D - 14``:

- :func:`available_snapshots` lists the snapshot dates, :func:`resolve_pair` picks the two
  (with a note when the earlier one is not exactly ``days`` before);
- :func:`transition_pairs` joins the two snapshots (full outer join on ``customer_id``):
  customers new since the earlier snapshot come ``from`` ``"(new)"``, customers absent from the
  later one go ``to`` ``"(gone)"``;
- :func:`transition_matrix` counts them per (from, to) with each from-row's share,
  :func:`movers` lists the customers who moved;
- :func:`rfm_spark.io.exports.write_result` writes either to one CSV or Parquet file, and
  :func:`rfm_spark.io.transitions_table.materialize` keeps the matrix in the
  ``segment_transitions`` Delta table (partitioned by ``as_of``).

Everything is built with the DataFrame Column API: segment names (which may hold quotes) are
never put into SQL text.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm_spark.errors import TransitionUsageError
from rfm_spark.schemas import SNAPSHOT_COLUMN

NEW = "(new)"
GONE = "(gone)"
NONE = "(none)"
BY_CHOICES = ("segment", "cluster")


@dataclass(frozen=True)
class SnapshotPair:
    """The two snapshots a transition compares.

    Attributes:
        earlier: The earlier snapshot actually used.
        later: The later snapshot (always the requested ``as_of``).
        requested_earlier: ``as_of - days``, the snapshot that was asked for.
        note: Says which snapshot was used instead when ``earlier != requested_earlier``.
    """

    earlier: dt.date
    later: dt.date
    requested_earlier: dt.date
    note: str | None = None

    @property
    def days(self) -> int:
        """Days between the two snapshots actually compared."""
        return (self.later - self.earlier).days


# --------------------------------------------------------------------------------------------
# Choosing the snapshots
# --------------------------------------------------------------------------------------------


def available_snapshots(segments: DataFrame) -> list[dt.date]:
    """Distinct snapshot dates of the table, oldest first.

    Args:
        segments: ``customer_segments`` rows; only ``snapshot_date`` (the partition column) is
            read.

    Returns:
        The sorted distinct non-null dates.
    """
    rows = segments.select(SNAPSHOT_COLUMN).distinct().collect()
    return sorted(r[0] for r in rows if r[0] is not None)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def resolve_pair(available: Sequence[dt.date], as_of: dt.date, days: int = 14) -> SnapshotPair:
    """Pick the snapshots to compare: ``as_of`` itself and the latest one on or before
    ``as_of - days``.

    Args:
        available: The table's snapshot dates (any order).
        as_of: The later snapshot; it must exist exactly.
        days: How far back the earlier snapshot is wanted (>= 1).

    Returns:
        The pair; ``note`` says which snapshot was used when none exists exactly ``days``
        before ``as_of``.

    Raises:
        TransitionUsageError: ``days`` < 1, no snapshot on ``as_of`` (the message names the
            nearest ones), or no snapshot on or before ``as_of - days``.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise TransitionUsageError(f"--days must be a whole number of at least 1, got {days!r}")
    dates = sorted(set(available))
    if not dates:
        raise TransitionUsageError(
            "the customer_segments table has no snapshots; run 'rfm-spark segment "
            "--snapshot-date D' (or 'rfm-spark backfill') first"
        )
    if as_of not in dates:
        i = bisect.bisect_left(dates, as_of)
        near = []
        if i > 0:
            near.append(f"{dates[i - 1]} before")
        if i < len(dates):
            near.append(f"{dates[i]} after")
        raise TransitionUsageError(
            f"no snapshot on --as-of {as_of}; nearest: {', '.join(near)}. Use one of those "
            f"dates, or run 'rfm-spark segment --snapshot-date {as_of}' first"
        )
    requested = as_of - dt.timedelta(days=days)
    i = bisect.bisect_right(dates, requested)
    if i == 0:
        smaller = f", or use --days {(as_of - dates[0]).days} or less" if dates[0] < as_of else ""
        raise TransitionUsageError(
            f"no snapshot on or before {requested} ({_plural(days, 'day')} before {as_of}); "
            f"the earliest is {dates[0]}. Run 'rfm-spark segment --snapshot-date {requested}' "
            f"(or 'rfm-spark backfill --start {requested} --end "
            f"{dates[0] - dt.timedelta(days=1)} --step-days {days}') to build the history"
            f"{smaller}"
        )
    earlier = dates[i - 1]
    note = None
    if earlier != requested:
        note = (
            f"no snapshot on {requested} ({_plural(days, 'day')} before {as_of}); using the "
            f"latest one before it, {earlier} ({_plural((as_of - earlier).days, 'day')} "
            "before)"
        )
    return SnapshotPair(earlier=earlier, later=as_of, requested_earlier=requested, note=note)


# --------------------------------------------------------------------------------------------
# Pairs, matrix, movers
# --------------------------------------------------------------------------------------------


def check_by(by: str) -> None:
    if by not in BY_CHOICES:
        raise TransitionUsageError(f"--by must be one of {', '.join(BY_CHOICES)}, got {by!r}")


def _label(by: str) -> Column:
    if by == "cluster":
        return F.coalesce(F.col("cluster_name"), F.col("cluster_id").cast("string"))
    return F.col("segment")


def _check_clusters(segments: DataFrame, pair: SnapshotPair) -> None:
    """Fail when either snapshot has no cluster at all (no model was applied to it)."""
    dates = [pair.earlier, pair.later]
    rows = (
        segments.filter(F.col(SNAPSHOT_COLUMN).isin(dates))
        .groupBy(SNAPSHOT_COLUMN)
        .agg(F.count(_label("cluster")).alias("clustered"))
        .collect()
    )
    clustered = {r[0]: int(r[1]) for r in rows}
    missing = [d for d in dates if not clustered.get(d)]
    if missing:
        which = " and ".join(str(d) for d in missing)
        raise TransitionUsageError(
            f"no clusters in snapshot {which} (cluster_id and cluster_name are null); run "
            f"'rfm-spark train --snapshot-date {missing[0]}' to assign clusters, or compare "
            "segments (--by segment)"
        )


def transition_pairs(segments: DataFrame, pair: SnapshotPair, *, by: str = "segment") -> DataFrame:
    """Each customer's label in the earlier and in the later snapshot.

    A full outer join of the two snapshots on ``customer_id``. Customers only in the later
    snapshot come from ``"(new)"``, customers only in the earlier one go to ``"(gone)"``; a
    customer present with a null label gets ``"(none)"``.

    Args:
        segments: ``customer_segments`` rows (any snapshots; filtered on ``snapshot_date``):
            ``customer_id``, ``snapshot_date`` and ``segment`` (``by="segment"``) or
            ``cluster_name`` / ``cluster_id`` (``by="cluster"``).
        pair: The snapshots to compare (see :func:`resolve_pair`).
        by: ``"segment"``, or ``"cluster"`` for the k-means cluster (``cluster_name``, else
            ``cluster_id`` as text).

    Returns:
        ``customer_id`` (string), ``from_segment`` (string), ``to_segment`` (string): one row
        per customer in either snapshot.

    Raises:
        TransitionUsageError: Unknown ``by``; ``by="cluster"`` and a snapshot has no clusters.
    """
    check_by(by)
    if by == "cluster":
        _check_clusters(segments, pair)

    def side(day: dt.date, name: str) -> DataFrame:
        return segments.filter(F.col(SNAPSHOT_COLUMN) == F.lit(day)).select(
            F.col("customer_id"),
            F.lit(True).alias(f"_in_{name}"),
            F.coalesce(_label(by), F.lit(NONE)).alias(name),
        )

    joined = side(pair.earlier, "from_segment").join(
        side(pair.later, "to_segment"), on="customer_id", how="full_outer"
    )
    return joined.select(
        F.col("customer_id"),
        F.when(F.col("_in_from_segment").isNull(), F.lit(NEW))
        .otherwise(F.col("from_segment"))
        .alias("from_segment"),
        F.when(F.col("_in_to_segment").isNull(), F.lit(GONE))
        .otherwise(F.col("to_segment"))
        .alias("to_segment"),
    )


def _ordered(df: DataFrame, *extra: str) -> DataFrame:
    """Sort by from (``(new)`` last), then to (``(gone)`` last), then ``extra`` columns."""
    return df.orderBy(
        (F.col("from_segment") == F.lit(NEW)).asc(),
        F.col("from_segment").asc(),
        (F.col("to_segment") == F.lit(GONE)).asc(),
        F.col("to_segment").asc(),
        *[F.col(c).asc() for c in extra],
    )


def transition_matrix(pairs: DataFrame) -> DataFrame:
    """Customers per (from, to) and their share of the from-row.

    Args:
        pairs: ``from_segment``, ``to_segment`` (one row per customer, from
            :func:`transition_pairs`).

    Returns:
        ``from_segment`` (string), ``to_segment`` (string), ``customers`` (bigint), ``share``
        (double: ``customers`` over all customers of that ``from_segment``, so each
        from-segment's shares sum to 1); sorted by from then to, ``"(new)"`` and ``"(gone)"``
        last.
    """
    counts = pairs.groupBy("from_segment", "to_segment").agg(
        F.count(F.lit(1)).cast("bigint").alias("customers")
    )
    per_from = Window.partitionBy("from_segment")
    matrix = counts.select(
        "from_segment",
        "to_segment",
        "customers",
        (F.col("customers") / F.sum("customers").over(per_from)).cast("double").alias("share"),
    )
    return _ordered(matrix)


def movers(
    pairs: DataFrame, *, from_segment: str | None = None, to_segment: str | None = None
) -> DataFrame:
    """The customers who moved, one row each.

    - neither given: every customer whose from and to differ (including new and gone ones);
    - only ``from_segment``: customers who left it (for anything else, or ``"(gone)"``);
    - only ``to_segment``: customers who entered it (from anything else, or ``"(new)"``);
    - both: customers with exactly that from and to (both equal: those who stayed).

    Args:
        pairs: ``customer_id``, ``from_segment``, ``to_segment`` (from :func:`transition_pairs`).
        from_segment: A label of the earlier snapshot, or ``"(new)"``.
        to_segment: A label of the later snapshot, or ``"(gone)"``.

    Returns:
        ``customer_id``, ``from_segment``, ``to_segment``, sorted by from, to and customer.
    """
    cond = F.lit(True)
    if from_segment is not None:
        cond = cond & (F.col("from_segment") == F.lit(from_segment))
    if to_segment is not None:
        cond = cond & (F.col("to_segment") == F.lit(to_segment))
    if from_segment is None or to_segment is None:
        cond = cond & (F.col("from_segment") != F.col("to_segment"))
    selected = pairs.filter(cond).select("customer_id", "from_segment", "to_segment")
    return _ordered(selected, "customer_id")


def check_labels(
    matrix_rows: Sequence[Any], *, from_segment: str | None, to_segment: str | None
) -> None:
    """Fail early when ``--from`` / ``--to`` name no label of the compared snapshots.

    Args:
        matrix_rows: Collected rows of :func:`transition_matrix` (``from_segment``,
            ``to_segment``; Rows or mappings).
        from_segment: The ``--from`` value, if any.
        to_segment: The ``--to`` value, if any.

    Raises:
        TransitionUsageError: A value is not among the from (or to) labels; the message lists
            the known ones.
    """
    froms = sorted({r["from_segment"] for r in matrix_rows})
    tos = sorted({r["to_segment"] for r in matrix_rows})
    for flag, value, known in (("--from", from_segment, froms), ("--to", to_segment, tos)):
        if value is not None and value not in known:
            raise TransitionUsageError(
                f"{flag} {value!r} is not a label of the compared snapshots; known: "
                f"{', '.join(repr(k) for k in known) or '(none)'}"
            )
