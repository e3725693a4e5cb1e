"""Validation, daily aggregates and RFM features (definitions: docs/tables.md).

Definitions, for a snapshot date ``D`` and a lookback of ``L`` days, with dates taken in the
session time zone (the pipeline sets it to ``features.time_zone``):

- window: transactions on days ``D - L <= day < D`` (so ``order_ts < D 00:00``).
- ``frequency``: purchase orders in the window: distinct ``order_id`` per day over rows with a
  positive amount (every positive row is an order when the input has no order id).
- ``monetary``: net spend in the window, returns and cancellations (negative amounts) included.
- ``purchase_days``: days with a purchase; ``first/last_purchase_date`` the first and last of them.
- ``recency_days``: ``D - last_purchase_date`` (1 for a purchase the day before ``D``).
- Customers with no purchase in the window, only returns, are kept: their purchase dates are
  the dates of their returns and ``flag`` is ``returns_only``; net spend <= 0 is flagged
  ``non_positive_spend``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def daily_aggregates(
    transactions: DataFrame,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    ordered: bool = False,
) -> DataFrame:
    """One row per customer and day.

    Two levels: per customer, day and order id (its purchase rows and net amount), then per
    customer and day (an order id with a purchase row is one order; purchase rows without an
    id are an order each).

    Args:
        transactions: valid canonical rows (``customer_id``, ``order_id``, ``order_ts`` or
            ``order_date``, ``amount``, optionally ``_copies``: rows already de-duplicated by
            :func:`rfm_spark.validation.deduplicate`).
        start: first day kept (inclusive), or all.
        end: first day not kept (exclusive), or all.
        ordered: the rows are sorted within their partitions by customer, day and order id
            (as :func:`~rfm_spark.validation.deduplicate` leaves them when the session sorts):
            each level then sorts by its own key, which Spark sees is already the order and
            runs as a streaming sort aggregate instead of two hash aggregates (in sessions that
            keep those sorts, see :func:`rfm_spark.session.keeps_sorts`).

    Returns:
        ``customer_id``, ``order_date``, ``orders`` (purchase orders that day), ``net_amount``
        (decimal(28,2), returns subtract), ``lines`` (rows used), ``duplicates`` (extra copies
        of those rows, not used).
    """
    df = transactions
    if "order_date" not in df.columns:
        df = df.withColumn("order_date", F.to_date("order_ts"))
    copies = F.col("_copies") if "_copies" in df.columns else F.lit(1)
    if start is not None:
        df = df.filter(F.col("order_date") >= F.lit(start))
    if end is not None:
        df = df.filter(F.col("order_date") < F.lit(end))
    per_order = _sorted(df, ordered, "customer_id", "order_date", "order_id").groupBy(
        "customer_id", "order_date", "order_id"
    )
    orders = per_order.agg(
        F.count(F.when(F.col("amount") > 0, 1)).alias("_purchase_rows"),
        F.sum("amount").alias("_net"),
        F.count(F.lit(1)).alias("_lines"),
        F.sum(copies - 1).alias("_duplicates"),
    )
    purchase_rows = F.col("_purchase_rows")
    # an order id with a purchase row is one order; rows without an id are one order each
    orders_that_day = F.when(F.col("order_id").isNull(), purchase_rows).otherwise(
        F.when(purchase_rows > 0, F.lit(1)).otherwise(F.lit(0))
    )
    return (
        _sorted(orders, ordered, "customer_id", "order_date")
        .groupBy("customer_id", "order_date")
        .agg(
            F.sum(orders_that_day).cast("bigint").alias("orders"),
            F.sum("_net").cast("decimal(28,2)").alias("net_amount"),
            F.sum("_lines").cast("bigint").alias("lines"),
            F.sum("_duplicates").cast("bigint").alias("duplicates"),
        )
    )


def _sorted(df: DataFrame, ordered: bool, *key: str) -> DataFrame:
    return df.sortWithinPartitions(*key) if ordered else df


def rfm_features(
    daily: DataFrame, *, snapshot_date: dt.date, lookback_days: int, ordered: bool = False
) -> DataFrame:
    """RFM features per customer as of ``snapshot_date`` from daily aggregates.

    Input columns: ``customer_id``, ``order_date``, ``orders``, ``net_amount``. ``ordered``:
    the daily rows are sorted within their partitions by customer (as
    :func:`daily_aggregates` leaves them with ``ordered``), so the customer level can stream.

    Returns:
        One row per customer active in the window: ``customer_id``, ``recency_days`` (int),
        ``frequency`` (bigint), ``monetary`` (decimal(18,2)), ``purchase_days`` (bigint),
        ``avg_order_value`` (decimal(18,2), null without orders), ``first_purchase_date``,
        ``last_purchase_date`` (date), ``tenure_days`` (int), ``flag`` (string or null).
    """
    start = snapshot_date - dt.timedelta(days=lookback_days)
    in_window = daily.filter(
        (F.col("order_date") >= F.lit(start)) & (F.col("order_date") < F.lit(snapshot_date))
    )
    in_window = _sorted(in_window, ordered, "customer_id")
    return _features(in_window, snapshot=F.lit(snapshot_date), keys=[])


def rfm_features_by_snapshot(
    daily: DataFrame, *, snapshot_dates: Sequence[dt.date], lookback_days: int
) -> DataFrame:
    """The features of many snapshots in one aggregation (backfills).

    Each daily row is joined to the snapshots whose window holds it (a broadcast range join
    with a table of one row per snapshot), then one aggregation groups by snapshot and customer.

    Returns:
        ``snapshot_date`` (date) and the columns of :func:`rfm_features`, one row per snapshot
        and customer active in that snapshot's window.
    """
    snaps = daily.sparkSession.createDataFrame(
        [(d, d - dt.timedelta(days=lookback_days)) for d in snapshot_dates],
        "snapshot_date date, _window_start date",
    )
    in_window = daily.join(
        F.broadcast(snaps),
        (F.col("order_date") >= F.col("_window_start"))
        & (F.col("order_date") < F.col("snapshot_date")),
        how="inner",
    )
    return _features(in_window, snapshot=F.col("snapshot_date"), keys=["snapshot_date"])


def _features(in_window: DataFrame, *, snapshot: Column, keys: Sequence[str]) -> DataFrame:
    bought = F.col("orders") > 0
    agg = in_window.groupBy(*keys, "customer_id").agg(
        F.sum("orders").alias("frequency"),
        F.sum("net_amount").alias("monetary"),
        F.count(F.when(bought, 1)).alias("purchase_days"),
        F.min(F.when(bought, F.col("order_date"))).alias("_first_buy"),
        F.max(F.when(bought, F.col("order_date"))).alias("_last_buy"),
        F.min("order_date").alias("_first_any"),
        F.max("order_date").alias("_last_any"),
    )
    first = F.coalesce("_first_buy", "_first_any")
    last = F.coalesce("_last_buy", "_last_any")
    monetary = F.col("monetary").cast("decimal(18,2)")
    return agg.select(
        *keys,
        "customer_id",
        F.datediff(snapshot, last).alias("recency_days"),
        F.col("frequency").cast("bigint").alias("frequency"),
        monetary.alias("monetary"),
        F.col("purchase_days").cast("bigint").alias("purchase_days"),
        F.when(F.col("frequency") > 0, F.round(monetary / F.col("frequency"), 2))
        .cast("decimal(18,2)")
        .alias("avg_order_value"),
        first.alias("first_purchase_date"),
        last.alias("last_purchase_date"),
        F.datediff(snapshot, first).alias("tenure_days"),
        F.when(F.col("frequency") == 0, F.lit("returns_only"))
        .when(F.col("monetary") <= 0, F.lit("non_positive_spend"))
        .alias("flag"),
    )
