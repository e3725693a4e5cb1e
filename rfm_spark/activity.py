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

from rfm_spark.schemas import ACTIVITY_PARTITION, ACTIVITY_SCHEMA, cast
from rfm_spark.validation import DUPLICATE, ROW, row_fingerprint

DAY = ACTIVITY_PARTITION
KEY = ["customer_id", DAY]
_ROW_KEY = [*KEY, "_h1", "_h2"]


def fingerprinted(valid: DataFrame) -> DataFrame:
    """Valid rows (``customer_id``, ``order_id``, ``amount``, ``order_date``, ``_row``) with the
    row's 96-bit fingerprint (``_h1``, ``_h2``)."""
    columns = ["customer_id", "order_id", "amount", "order_date", ROW]
    return valid.select(*columns, *row_fingerprint(valid))


def unseen_rows(batch: DataFrame, existing: DataFrame, *, dedupe: bool) -> DataFrame:
    """The batch's distinct rows with ``_copies`` (copies of it in the batch) and ``_seen`` (an
    earlier batch already took it), partitioned by customer and day.

    The batch's narrow columns and the fingerprints of the activity are shuffled once, by
    customer and day, together (a day's rows spread over all tasks): the grouping by
    fingerprint here and the grouping by customer and day in :func:`merged_days` reuse that
    partitioning. The original row (``_row``) is not shuffled; :func:`duplicates` fetches it
    for the few copies.
    With ``dedupe`` rows are grouped by fingerprint within their customer and day, as a full
    run groups them; without it every row stands alone (``validation.duplicates: keep``).

    Args:
        batch: :func:`fingerprinted` rows of the batch.
        existing: Activity rows of (at least) the days the batch touches.

    Returns:
        ``customer_id``, ``order_date``, ``order_id``, ``amount``, ``_h1``, ``_h2``,
        ``_copies``, ``_seen``.
    """
    rows = batch.select(*KEY, "order_id", "amount", "_h1", "_h2")
    if not dedupe:
        flags = {"_copies": F.lit(1).cast("bigint"), "_seen": F.lit(False)}
        return rows.repartition(*KEY).withColumns(flags)
    seen = existing.select(*KEY, F.explode("fingerprints").alias("_fp")).select(
        *KEY,
        F.lit(None).cast("string").alias("order_id"),
        cast(F.lit(None), batch.schema["amount"].dataType).alias("amount"),
        F.col("_fp.h1").alias("_h1"),
        F.col("_fp.h2").alias("_h2"),
        F.lit(0).alias("_new"),
    )
    new = F.col("_new") == 1
    grouped = (
        rows.withColumn("_new", F.lit(1))
        .unionByName(seen)
        .repartition(*KEY)
        .groupBy(*_ROW_KEY)
        .agg(
            F.sum("_new").cast("bigint").alias("_copies"),
            (F.min("_new") == 0).alias("_seen"),
            F.first(F.when(new, F.struct("order_id", "amount")), ignorenulls=True).alias("_r"),
        )
    )
    return grouped.filter(F.col("_copies") > 0).select(
        *KEY, "_r.order_id", "_r.amount", "_h1", "_h2", "_copies", "_seen"
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


def duplicates(taken: DataFrame, batch: DataFrame) -> DataFrame:
    """One row (``reason``, ``_row``) per extra copy in ``taken`` (:func:`unseen_rows`), for the
    quarantine: the whole rows come from ``batch`` (:func:`fingerprinted`, with ``_row``)."""
    extra = taken.filter(_extra_copies() > 0).select(*_ROW_KEY, _extra_copies().alias("_extra"))
    whole = (
        batch.join(extra.select(*_ROW_KEY), on=_ROW_KEY, how="left_semi")
        .groupBy(*_ROW_KEY)
        .agg(F.first(ROW).alias(ROW))
    )
    return (
        whole.join(extra, on=_ROW_KEY)
        .select(
            F.lit(DUPLICATE).alias("reason"),
            ROW,
            F.explode(F.sequence(F.lit(1), F.col("_extra"))).alias("_copy"),
        )
        .drop("_copy")
    )


def _empty(like: str) -> Column:
    return F.expr(f"CAST(array() AS array<{like}>)")


def merged_days(existing: DataFrame, fresh: DataFrame) -> DataFrame:
    """The activity rows of the touched days once ``fresh`` rows are added.

    Each fresh row becomes its contribution to its customer-day (an order id, an anonymous
    purchase, its amount, its fingerprint), the existing rows are shuffled by customer and day
    to meet the fresh ones (which :func:`unseen_rows` left partitioned so), and one grouping by
    customer and day adds them up.

    Args:
        existing: Activity rows of exactly the days being rewritten.
        fresh: Rows never taken before (:func:`unseen_rows` without ``_seen``), one per
            distinct row.

    Returns:
        Rows of :data:`rfm_spark.schemas.ACTIVITY_SCHEMA`: ``orders`` = distinct order ids
        with a purchase + purchases without an id; amounts and lines add up.
    """
    purchase = F.col("amount") > 0
    fingerprint = ACTIVITY_SCHEMA["fingerprints"].dataType.simpleString()[len("array<") : -1]
    added = fresh.select(
        *KEY,
        F.when(purchase & F.col("order_id").isNotNull(), F.array("order_id"))
        .otherwise(_empty("string"))
        .alias("purchase_orders"),
        F.when(purchase & F.col("order_id").isNull(), F.lit(1))
        .otherwise(F.lit(0))
        .cast("bigint")
        .alias("anonymous_purchases"),
        F.col("amount").cast("decimal(28,2)").alias("net_amount"),
        F.lit(1).cast("bigint").alias("lines"),
        F.array(F.struct(F.col("_h1").alias("h1"), F.col("_h2").alias("h2")))
        .cast(f"array<{fingerprint}>")
        .alias("fingerprints"),
    )
    old = existing.select(*added.columns).repartition(*KEY)
    ids = F.array_sort(F.array_distinct(F.flatten(F.collect_list("purchase_orders"))))
    anonymous = F.sum("anonymous_purchases")
    columns = {
        "orders": F.size(ids) + anonymous,
        "net_amount": F.sum("net_amount"),
        "lines": F.sum("lines"),
        "purchase_orders": ids,
        "anonymous_purchases": anonymous,
        "fingerprints": F.flatten(F.collect_list("fingerprints")),
    }
    return (
        added.unionByName(old)
        .groupBy(*KEY)
        .agg(*(v.alias(k) for k, v in columns.items()))
        .select(*(cast(F.col(f.name), f.dataType).alias(f.name) for f in ACTIVITY_SCHEMA.fields))
    )


def daily_activity(activity: DataFrame) -> DataFrame:
    """The activity as the daily aggregates the features are computed from."""
    return activity.select("customer_id", "order_date", "orders", "net_amount")
