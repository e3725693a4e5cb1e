"""Where the rows of an incremental micro-batch went: its reconciliation.

The batch's validated rows are counted once, in one job, by what they are (bad, by reason;
valid, by the place of their day relative to the snapshot's window), and that job also returns
the days the valid rows fall on (the days of the activity the batch touches). Once the
comparison with the activity has found the copies of rows taken before, they are taken off the
valid counts and counted as quarantined, as a full run counts them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.activity import DAY, duplicate_count
from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.validation import DUPLICATE, REASONS


def _places(start: dt.date, snapshot: dt.date) -> dict[str, Column]:
    """Where a valid row's day lies relative to the window ``start <= day < snapshot``."""
    day = F.col(DAY)
    return {
        "before_window": day < F.lit(start),
        "in_window": (day >= F.lit(start)) & (day < F.lit(snapshot)),
        "after_snapshot": day >= F.lit(snapshot),
    }


@dataclass(frozen=True)
class BatchCounts:
    """A batch's rows by what they are, and the days its valid rows fall on."""

    counts: dict[str, int]  # input_rows, one count per reason of REASONS, one per place
    days: list[dt.date]
    start: dt.date
    snapshot: dt.date

    @staticmethod
    def of(validated: DataFrame, start: dt.date, snapshot: dt.date) -> BatchCounts:
        """Count ``validated`` (rows with ``reject_reason`` and ``order_date``) in one job."""
        valid = F.col("reject_reason").isNull()
        places = _places(start, snapshot)
        row = validated.agg(
            F.count(F.lit(1)).alias("input_rows"),
            *[F.count(F.when(F.col("reject_reason") == r, 1)).alias(r) for r in REASONS],
            *[F.count(F.when(valid & where, 1)).alias(name) for name, where in places.items()],
            F.collect_set(F.when(valid, F.col(DAY))).alias("_days"),
        ).first()
        assert row is not None
        counts = {k: int(v) for k, v in row.asDict().items() if k != "_days"}
        return BatchCounts(counts, sorted(row["_days"]), start, snapshot)

    def reconciliation(self, taken: DataFrame) -> Reconciliation:
        """Where the batch's rows went, once ``taken``
        (:func:`rfm_spark.activity.unseen_rows`) found the copies (one small job)."""
        places = _places(self.start, self.snapshot)
        copies = taken.agg(
            *[F.coalesce(duplicate_count(where), F.lit(0)).alias(n) for n, where in places.items()]
        ).first()
        assert copies is not None
        counts = self.counts
        quarantined = {r: counts[r] for r in REASONS if counts[r]}
        if sum(copies):
            quarantined[DUPLICATE] = int(sum(copies))
        return Reconciliation(
            input_rows=counts["input_rows"],
            used=counts["in_window"] - int(copies["in_window"]),
            before_window=counts["before_window"] - int(copies["before_window"]),
            after_snapshot=counts["after_snapshot"] - int(copies["after_snapshot"]),
            quarantined=quarantined,
        )
