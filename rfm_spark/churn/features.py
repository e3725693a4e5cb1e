"""Churn features and labels from daily activity: DataFrame transforms, no action.

A snapshot ``D``'s features read only days before ``D`` (tests check that rows on or after it
change nothing); its label reads only the ``horizon`` days from ``D``. The features are the RFM
features over the lookback, tenure, and recent activity against the period before it, which
is what separates a customer who is slowing down from one who always bought rarely:

- ``recency_days``, ``frequency``, ``monetary``, ``purchase_days``, ``tenure_days`` as in
  ``customer_segments`` (days with a purchase; tenure from the first purchase in the lookback);
- ``orders_30d``, ``orders_90d``, ``spend_30d``, ``spend_90d``: the last 30 and 90 days;
- ``orders_prev_90d``, ``spend_prev_90d``: the 90 days before those 90;
- ``order_trend``, ``spend_trend``: last 90 days minus the 90 before, over their sum (-1 all
  earlier, +1 all recent, 0 steady or none).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

FEATURES = [
    "recency_days", "frequency", "monetary", "purchase_days", "tenure_days", "orders_30d",
    "orders_90d", "spend_30d", "spend_90d", "orders_prev_90d", "spend_prev_90d", "order_trend",
    "spend_trend",
]  # fmt: skip
LABEL = "churned"


def _within(days_before: int, days_until: int, snapshot_date: dt.date) -> Column:
    """Days in ``[D - days_before, D - days_until)``."""
    day = F.col("order_date")
    start = F.lit(snapshot_date - dt.timedelta(days=days_before))
    return (day >= start) & (day < F.lit(snapshot_date - dt.timedelta(days=days_until)))


def _trend(recent: Column, before: Column) -> Column:
    total = recent + before
    return F.when(total > 0, (recent - before) / total).otherwise(F.lit(0.0))


def churn_features(daily: DataFrame, snapshot_date: dt.date, lookback_days: int) -> DataFrame:
    """One row per customer with a purchase in the lookback before ``snapshot_date``.

    Args:
        daily: :func:`rfm_spark.features.daily_aggregates` rows (``customer_id``,
            ``order_date``, ``orders``, ``net_amount``), any dates.
        snapshot_date: ``D``.
        lookback_days: The window of the RFM features (at least 180 for the trends to see
            both periods).

    Returns:
        ``customer_id`` and :data:`FEATURES` (doubles).
    """
    window = daily.filter(_within(lookback_days, 0, snapshot_date))
    orders, spend, bought = F.col("orders"), F.col("net_amount"), F.col("orders") > 0

    def total(value: Column, days_before: int, days_until: int = 0) -> Column:
        inside = _within(days_before, days_until, snapshot_date)
        return F.coalesce(F.sum(F.when(inside, value)), F.lit(0)).cast("double")

    agg = window.groupBy("customer_id").agg(
        F.max(F.when(bought, F.col("order_date"))).alias("_last"),
        F.min(F.when(bought, F.col("order_date"))).alias("_first"),
        F.sum("orders").cast("double").alias("frequency"),
        F.sum("net_amount").cast("double").alias("monetary"),
        F.count(F.when(bought, 1)).cast("double").alias("purchase_days"),
        total(orders, 30).alias("orders_30d"),
        total(orders, 90).alias("orders_90d"),
        total(spend, 30).alias("spend_30d"),
        total(spend, 90).alias("spend_90d"),
        total(orders, 180, 90).alias("orders_prev_90d"),
        total(spend, 180, 90).alias("spend_prev_90d"),
    )
    d = F.lit(snapshot_date)
    return agg.filter(F.col("_last").isNotNull()).select(
        "customer_id",
        F.datediff(d, "_last").cast("double").alias("recency_days"),
        "frequency", "monetary", "purchase_days",
        F.datediff(d, "_first").cast("double").alias("tenure_days"),
        "orders_30d", "orders_90d", "spend_30d", "spend_90d", "orders_prev_90d", "spend_prev_90d",
        _trend(F.col("orders_90d"), F.col("orders_prev_90d")).alias("order_trend"),
        _trend(F.col("spend_90d"), F.col("spend_prev_90d")).alias("spend_trend"),
    )  # fmt: skip


def churn_labels(daily: DataFrame, snapshot_date: dt.date, horizon_days: int) -> DataFrame:
    """``customer_id`` and :data:`LABEL`: 0 for customers with a purchase in the ``horizon_days``
    from ``snapshot_date``; join with the features, missing customers churned (1)."""
    end = F.lit(snapshot_date + dt.timedelta(days=horizon_days))
    after = (F.col("order_date") >= F.lit(snapshot_date)) & (F.col("order_date") < end)
    return (
        daily.filter(after & (F.col("orders") > 0))
        .select("customer_id")
        .distinct()
        .withColumn(LABEL, F.lit(0.0))
    )


def labelled(features: DataFrame, labels: DataFrame) -> DataFrame:
    """The features with :data:`LABEL`: 1.0 for customers without a purchase in the horizon."""
    return features.join(labels, on="customer_id", how="left").fillna({LABEL: 1.0})
