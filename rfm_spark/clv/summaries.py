"""The customer summaries the CLV models are fitted on: DataFrame transforms, no action.

As the CLV literature defines them, from a customer's days with a purchase before the snapshot
date ``D`` (the calibration period ends with the day before ``D``):

- ``frequency`` (x): repeat purchase days, the days with a purchase after the first one;
- ``recency`` (t_x): time from the first purchase day to the last one;
- ``T``: time from the first purchase day to the end of the calibration period (``D - 1``);
- ``monetary_value`` (m): mean net spend of the repeat purchase days (null without any).

Times are in days or weeks (days / 7). Several purchases on one day are one purchase day, as
in the CDNOW summaries of the BG/NBD paper.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

UNIT_DAYS = {"day": 1.0, "week": 7.0}
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]


def customer_summaries(daily: DataFrame, snapshot_date: dt.date, unit: str = "day") -> DataFrame:
    """One row per customer with a purchase day before ``snapshot_date``.

    Args:
        daily: :func:`rfm_spark.features.daily_aggregates` rows (``customer_id``,
            ``order_date``, ``orders``, ``net_amount``), any dates.
        snapshot_date: ``D``: days before it count.
        unit: ``day`` or ``week``.

    Returns:
        :data:`SUMMARY_COLUMNS` (``frequency`` long, the others double).
    """
    days = UNIT_DAYS[unit]
    bought = daily.filter((F.col("orders") > 0) & (F.col("order_date") < F.lit(snapshot_date)))
    end = F.lit(snapshot_date - dt.timedelta(days=1))
    count = F.count(F.lit(1))
    repeat_spend = F.sum("net_amount") - F.min_by("net_amount", "order_date")
    return bought.groupBy("customer_id").agg(
        (count - 1).cast("long").alias("frequency"),
        (F.datediff(F.max("order_date"), F.min("order_date")) / days).alias("recency"),
        (F.datediff(end, F.min("order_date")) / days).alias("T"),
        F.when(count > 1, repeat_spend / (count - 1)).cast("double").alias("monetary_value"),
    )


def grouped(summaries: DataFrame) -> DataFrame:
    """Customers with the same summary counted once (``n``): what the likelihood sums over."""
    return summaries.groupBy("frequency", "recency", "T").agg(F.count(F.lit(1)).alias("n"))
