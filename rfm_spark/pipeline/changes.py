"""A Delta input's updated and deleted rows, read from its change data feed.

An incremental run over a Delta input whose change data feed is on reads each commit's changes
(:func:`rfm_spark.io.inputs.stream_transactions`). Inserted rows and the new images of updated
rows are new rows like any other. Deleted rows and the old images of updated rows withdraw rows
the activity may hold; aggregated activity cannot subtract a row exactly (an order stays an
order while another row of it is left, a copy may remain), so every customer-day that lost a
row is recomputed from the input as of the batch's last commit, validated and de-duplicated as
a full run would. The activity then equals a full read of the input at that commit, day by day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.activity import KEY, fingerprinted, merged_days, unseen_rows, without_rows
from rfm_spark.io.inputs import CHANGE_COLUMNS, read_input
from rfm_spark.pipeline.run import Run
from rfm_spark.schemas import ACTIVITY_SCHEMA
from rfm_spark.sqltext import quote
from rfm_spark.validation import ROW, validate

CHANGE_TYPE, COMMIT_VERSION = CHANGE_COLUMNS[0], CHANGE_COLUMNS[1]
ADDED = ("insert", "update_postimage")
WITHDRAWN = ("delete", "update_preimage")


def _valid() -> Column:
    return F.col("reject_reason").isNull()


@dataclass(frozen=True)
class Withdrawn:
    """The valid rows a batch took out of the input, and what the recompute needs."""

    rows: DataFrame  # fingerprinted, cached
    keys: DataFrame  # their distinct (customer_id, order_date), cached
    days: list[dt.date]
    count: int
    version: int  # the batch's last commit of the input
    row_columns: tuple[str, ...]  # the input's columns as the stream read them

    def release(self) -> None:
        self.keys.unpersist()
        self.rows.unpersist()


def added_rows(batch: DataFrame) -> DataFrame:
    """The batch's new rows (inserts and new images) without the change columns; a batch
    without change columns as it is."""
    if CHANGE_TYPE not in batch.columns:
        return batch
    return batch.filter(F.col(CHANGE_TYPE).isin(*ADDED)).drop(*CHANGE_COLUMNS)


def withdrawn_rows(batch: DataFrame) -> Withdrawn | None:
    """The valid rows the batch deletes or replaces (None when it withdraws none). Runs two
    small jobs over the (cached) batch: its last commit and the days it withdraws from."""
    if CHANGE_TYPE not in batch.columns:
        return None
    gone = F.col(CHANGE_TYPE).isin(*WITHDRAWN) & _valid()
    head = batch.agg(F.max(COMMIT_VERSION).alias("v"), F.count(F.when(gone, 1)).alias("n")).first()
    if head is None or not head["n"]:
        return None
    rows = fingerprinted(batch.filter(gone)).persist(StorageLevel.MEMORY_AND_DISK)
    keys = rows.select(*KEY).distinct().persist(StorageLevel.MEMORY_AND_DISK)
    try:
        days = sorted(r[0] for r in keys.select("order_date").distinct().collect())
    except BaseException:
        keys.unpersist()
        rows.unpersist()
        raise
    names = tuple(batch.schema[ROW].dataType.fieldNames())  # type: ignore[attr-defined]
    return Withdrawn(rows, keys, days, int(head["n"]), int(head["v"]), names)


def compared_with(existing: DataFrame, withdrawn: Withdrawn | None) -> DataFrame:
    """The activity new rows are compared with to find copies: without the withdrawn rows."""
    return existing if withdrawn is None else without_rows(existing, withdrawn.rows)


def with_recomputed(
    run: Run, existing: DataFrame, fresh: DataFrame, withdrawn: Withdrawn | None, now: dt.datetime
) -> tuple[DataFrame, DataFrame]:
    """(activity, new rows) to merge once the customer-days that lost rows are recomputed.

    Those customer-days are read again from the input as of the batch's last commit (which
    holds the batch's own new rows), so they leave the existing activity and the new rows.

    Args:
        run: The run (its input settings and duplicate policy).
        existing: Activity rows of the days being rewritten.
        fresh: The batch's distinct rows not taken before.
        withdrawn: What the batch took out (nothing to do when None).
        now: The run's start, as the batch was validated.
    """
    if withdrawn is None:
        return existing, fresh
    spark, config = run.spark, run.config
    # the row as the stream saw it: a column added to the input since would change the
    # fingerprints, and copies of these rows arriving later would not be known as copies
    columns = [quote(c) for c in withdrawn.row_columns]
    source = read_input(spark, config.input, version=withdrawn.version).select(*columns)
    valid = validate(source, config.input, now=now).filter(_valid())
    rows = fingerprinted(valid).join(withdrawn.keys, on=KEY, how="left_semi")
    dedupe = config.validation.duplicates == "quarantine"
    none = spark.createDataFrame([], ACTIVITY_SCHEMA)
    recomputed = merged_days(none, unseen_rows(rows, none, dedupe=dedupe))
    kept = existing.join(withdrawn.keys, on=KEY, how="left_anti")
    # by customer and day, as unseen_rows left them: the merge then needs no further shuffle
    rest = fresh.join(withdrawn.keys, on=KEY, how="left_anti").repartition(*KEY)
    return kept.unionByName(recomputed), rest
