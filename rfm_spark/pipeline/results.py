"""What a run reports: where the input rows went, the segments it committed, its results.

Segment and backfill runs (and a replayed segment run) return these same types, so the CLI,
the jobs and the tests read one shape whichever way a snapshot was made.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.io.store import TableStore
from rfm_spark.schemas import SNAPSHOT_COLUMN
from rfm_spark.scoring import ScoringInfo
from rfm_spark.segments import Scheme


@dataclass(frozen=True)
class Reconciliation:
    """Where every input row went: ``input_rows = used + outside_window + quarantined_rows``.

    ``quarantined`` holds the rows per reason (:data:`rfm_spark.validation.ALL_REASONS`),
    only the reasons that occurred.
    """

    input_rows: int
    used: int
    before_window: int
    after_snapshot: int
    quarantined: dict[str, int]

    @property
    def outside_window(self) -> int:
        """Valid rows not used because they fall before the window or on/after the snapshot."""
        return self.before_window + self.after_snapshot

    @property
    def quarantined_rows(self) -> int:
        """Bad rows of every reason together."""
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        """Whether every input row is accounted for (no row was lost or counted twice)."""
        return self.input_rows == self.used + self.outside_window + self.quarantined_rows

    def __add__(self, other: Reconciliation) -> Reconciliation:
        """Both counts together (the micro-batches of an incremental run)."""
        reasons = {**self.quarantined}
        for reason, n in other.quarantined.items():
            reasons[reason] = reasons.get(reason, 0) + n
        return Reconciliation(
            input_rows=self.input_rows + other.input_rows,
            used=self.used + other.used,
            before_window=self.before_window + other.before_window,
            after_snapshot=self.after_snapshot + other.after_snapshot,
            quarantined=reasons,
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts as stored in commit metadata (and read back by a replay)."""
        return {
            "input_rows": self.input_rows,
            "used": self.used,
            "before_window": self.before_window,
            "after_snapshot": self.after_snapshot,
            "quarantined": dict(self.quarantined),
        }

    def line(self) -> str:
        """``input rows N = used + outside the window + quarantined {reason: n}``."""
        q = self.quarantined_rows
        return (
            f"input rows {self.input_rows:,} = used {self.used:,} + outside the window "
            f"{self.outside_window:,} + quarantined {q:,}"
            + (f" {dict(sorted(self.quarantined.items()))}" if q else "")
        )


@dataclass(frozen=True)
class SegmentSummaryRow:
    """One segment of a committed snapshot: its customers and revenue, and their shares."""

    segment: str
    customers: int
    share: float
    revenue: float
    revenue_share: float


@dataclass(frozen=True)
class SegmentResult:
    """What a segment run did."""

    run_id: str
    snapshot_date: dt.date
    table_path: str
    version: int
    customers: int
    reconciliation: Reconciliation
    scoring: ScoringInfo
    scheme: str
    summary: list[SegmentSummaryRow]
    timings: dict[str, float] = field(default_factory=dict)
    quarantine_path: str | None = None
    quarantine_version: int | None = None
    replayed: bool = False  # an earlier attempt with the same idempotency key committed it


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did: one :class:`SegmentResult` per snapshot."""

    run_id: str
    table_path: str
    versions: list[int]
    snapshots: list[SegmentResult]
    timings: dict[str, float] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None  # the whole span, read once
    quarantine_path: str | None = None
    quarantine_version: int | None = None


def summarize(segments: DataFrame, scheme: Scheme | None = None) -> list[SegmentSummaryRow]:
    """Customers, share and revenue share per segment (from the table as committed).

    Args:
        segments: Rows of ``customer_segments``.
        scheme: Orders the rows as the scheme lists its segments; without it, by name.

    Returns:
        One row per segment present.
    """
    rows = (
        segments.groupBy("segment")
        .agg(F.count(F.lit(1)).alias("customers"), F.sum("monetary").alias("revenue"))
        .collect()
    )
    total = sum(r["customers"] for r in rows) or 1
    revenue = sum(float(r["revenue"] or 0) for r in rows)
    order = {name: i for i, name in enumerate(scheme.segments)} if scheme else {}
    out = [
        SegmentSummaryRow(
            segment=r["segment"],
            customers=int(r["customers"]),
            share=r["customers"] / total,
            revenue=float(r["revenue"] or 0),
            revenue_share=(float(r["revenue"] or 0) / revenue) if revenue else 0.0,
        )
        for r in rows
    ]
    return sorted(out, key=lambda s: (order.get(s.segment, len(order)), s.segment or ""))


def summary_of(
    store: TableStore, path: str, version: int, snapshot_date: dt.date, scheme: Scheme
) -> list[SegmentSummaryRow]:
    """The summary of one snapshot as committed in ``version``.

    Read back from the table rather than from the rows in hand, so the summary shows what a
    reader of that version sees.
    """
    written = store.read(path, version=version).filter(
        F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date)
    )
    return summarize(written, scheme)
