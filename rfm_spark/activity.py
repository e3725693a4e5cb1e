"""Daily activity per customer: each input row validated, de-duplicated and aggregated once.

The ``customer_day_activity`` table holds one row per customer and day: the purchase orders
and net amount the features need, and what it takes to add more rows to that day later
exactly as a full recompute would count them: the ids of the orders that had a purchase (a
late row of a known order is no new order), the purchases without an order id (each its own
order), and the fingerprints of the rows taken (a copy of one of them is a duplicate).

Adding a batch of new rows touches only the days the batch holds: their activity rows are
read, the batch's distinct unseen rows are added, and those days are written back. A snapshot
reads four narrow columns of its window's days (:func:`daily_activity`) instead of the raw
rows. All functions here build plans; they run no Spark action.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.schemas import ACTIVITY_SCHEMA
from rfm_spark.validation import DUPLICATE, ROW, row_fingerprint

KEY = ["customer_id", "order_date"]
_ROW_KEY = [*KEY, "_h1", "_h2"]


def fingerprinted(valid: DataFrame) -> DataFrame:
    """Valid rows (``customer_id``, ``order_id``, ``amount``, ``order_date``, ``_row``) with the
    row's 96-bit fingerprint (``_h1``, ``_h2``)."""
    columns = ["customer_id", "order_id", "amount", "order_date", ROW]
    return valid.select(*columns, *row_fingerprint(valid))


def unseen_rows(batch: DataFrame, existing: DataFrame, *, dedupe: bool) -> DataFrame:
    """The batch's rows with ``_copies`` (copies of it in the batch) and ``_seen`` (an earlier
    batch already took it).

    With ``dedupe`` rows are grouped by fingerprint within their customer and day, as a full
    run groups them; without it every row stands alone (``validation.duplicates: keep``).

    Args:
        batch: :func:`fingerprinted` rows of the batch.
        existing: Activity rows of (at least) the days the batch touches.
    """
    if not dedupe:
        return batch.withColumn("_copies", F.lit(1)).withColumn("_seen", F.lit(False))
    grouped = batch.groupBy(*KEY, "order_id", "_h1", "_h2").agg(
        F.first("amount").alias("amount"),
        F.first(ROW).alias(ROW),
        F.count(F.lit(1)).alias("_copies"),
    )
    seen = (
        existing.select(*KEY, F.explode("fingerprints").alias("_fp"))
        .select(*KEY, F.col("_fp.h1").alias("_h1"), F.col("_fp.h2").alias("_h2"))
        .withColumn("_seen", F.lit(True))
    )
    return grouped.join(seen, on=_ROW_KEY, how="left").withColumn(
        "_seen", F.coalesce("_seen", F.lit(False))
    )


def without_rows(existing: DataFrame, withdrawn: DataFrame) -> DataFrame:
    """``existing`` activity whose fingerprints no longer hold the ``withdrawn`` rows (rows a
    change feed deleted or replaced), for :func:`unseen_rows`: a new row equal to a withdrawn
    one is then no copy.

    Args:
        existing: Activity rows.
        withdrawn: :func:`fingerprinted` rows taken out of the input.
    """
    gone = withdrawn.groupBy(*KEY).agg(
        F.collect_set(F.struct(F.col("_h1").alias("h1"), F.col("_h2").alias("h2"))).alias("_gone")
    )
    kept = F.when(F.col("_gone").isNull(), F.col("fingerprints")).otherwise(
        F.array_except("fingerprints", "_gone")
    )
    return existing.join(gone, on=KEY, how="left").withColumn("fingerprints", kept).drop("_gone")


def _extra_copies() -> Column:
    return F.when(F.col("_seen"), F.col("_copies")).otherwise(F.col("_copies") - 1)


def duplicate_count(where: Column | None = None) -> Column:
    """Over :func:`unseen_rows`: the extra copies (of rows ``where`` holds), a row taken by an
    earlier batch counting whole."""
    extra = _extra_copies()
    return F.sum(extra if where is None else F.when(where, extra).otherwise(F.lit(0)))


def duplicates(rows: DataFrame) -> DataFrame:
    """One row (``reason``, ``_row``) per extra copy in :func:`unseen_rows`, for the quarantine."""
    return (
        rows.filter(_extra_copies() > 0)
        .select(
            F.lit(DUPLICATE).alias("reason"),
            ROW,
            F.explode(F.sequence(F.lit(1), _extra_copies())).alias("_copy"),
        )
        .drop("_copy")
    )


def _or_empty(col: str, like: str) -> Column:
    return F.coalesce(F.col(col), F.expr(f"CAST(array() AS array<{like}>)"))


def merged_days(existing: DataFrame, fresh: DataFrame) -> DataFrame:
    """The activity rows of the touched days once ``fresh`` rows are added.

    Args:
        existing: Activity rows of exactly the days being rewritten.
        fresh: Rows never taken before (:func:`unseen_rows` without ``_seen``), one per
            distinct row.

    Returns:
        Rows of :data:`rfm_spark.schemas.ACTIVITY_SCHEMA`: ``orders`` = distinct order ids
        with a purchase + purchases without an id; amounts and lines add up.
    """
    purchase = F.col("amount") > 0
    added = fresh.groupBy(*KEY).agg(
        F.collect_set(F.when(purchase & F.col("order_id").isNotNull(), F.col("order_id"))).alias(
            "_ids"
        ),
        F.count(F.when(purchase & F.col("order_id").isNull(), 1)).alias("_anonymous"),
        F.sum("amount").alias("_net"),
        F.count(F.lit(1)).alias("_lines"),
        F.collect_list(F.struct(F.col("_h1").alias("h1"), F.col("_h2").alias("h2"))).alias("_fps"),
    )
    joined = existing.join(added, on=KEY, how="full")
    ids = F.array_sort(
        F.array_distinct(
            F.concat(_or_empty("purchase_orders", "string"), _or_empty("_ids", "string"))
        )
    )
    anonymous = F.coalesce("anonymous_purchases", F.lit(0)) + F.coalesce("_anonymous", F.lit(0))
    fingerprint = ACTIVITY_SCHEMA["fingerprints"].dataType.simpleString()[len("array<") : -1]
    columns = {
        "orders": F.size(ids) + anonymous,
        "net_amount": F.coalesce("net_amount", F.lit(0)) + F.coalesce("_net", F.lit(0)),
        "lines": F.coalesce("lines", F.lit(0)) + F.coalesce("_lines", F.lit(0)),
        "purchase_orders": ids,
        "anonymous_purchases": anonymous,
        "fingerprints": F.concat(
            _or_empty("fingerprints", fingerprint), _or_empty("_fps", fingerprint)
        ),
    }
    return joined.select(
        *(
            (F.col(f.name) if f.name in KEY else columns[f.name]).cast(f.dataType).alias(f.name)
            for f in ACTIVITY_SCHEMA.fields
        )
    )


def daily_activity(activity: DataFrame) -> DataFrame:
    """The activity as the daily aggregates the features are computed from."""
    return activity.select("customer_id", "order_date", "orders", "net_amount")
