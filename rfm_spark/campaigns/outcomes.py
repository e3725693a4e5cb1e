"""What the customers of a campaign did after their contact day: DataFrame transforms, no action.

A customer's outcome for an audience row of day ``d`` is read from the valid transactions on
days ``d <= day < d + window``: ``converted`` (any purchase) and ``revenue`` (net spend,
returns subtract). :func:`arm_summaries` reduces the outcomes to per-arm sums per segment and
over all segments, which is all the statistics need (:mod:`rfm_spark.experiments`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.schemas import AUDIENCES_PARTITION

ALL = "(all)"
KEY = [AUDIENCES_PARTITION, "campaign", "customer_id", "arm", "segment"]


def outcomes(audience: DataFrame, transactions: DataFrame, window_days: int) -> DataFrame:
    """One row per audience row with ``converted`` (0/1) and ``revenue`` in its window.

    Args:
        audience: ``campaign_audiences`` rows.
        transactions: Valid rows with ``customer_id``, ``order_date``, ``amount``.
        window_days: Days after (and including) the contact day that count.
    """
    tx = transactions.select(
        F.col("customer_id").alias("_customer"), "order_date", F.col("amount").alias("_amount")
    )
    day = F.col(AUDIENCES_PARTITION)
    in_window = (
        (F.col("customer_id") == F.col("_customer"))
        & (F.col("order_date") >= day)
        & (F.col("order_date") < F.date_add(day, window_days))
    )
    joined = audience.select(*KEY).join(tx, on=in_window, how="left")
    return joined.groupBy(*KEY).agg(
        F.max(F.when(F.col("_amount") > 0, 1).otherwise(0)).alias("converted"),
        F.coalesce(F.sum("_amount"), F.lit(0)).cast("double").alias("revenue"),
    )


def arm_summaries(per_customer: DataFrame) -> DataFrame:
    """Per segment (and ``(all)``) and arm: ``customers``, ``conversions``, ``revenue`` and
    ``revenue_sq`` (the sum of squares, for the standard deviation)."""
    sums = [
        F.count(F.lit(1)).alias("customers"),
        F.sum("converted").cast("long").alias("conversions"),
        F.sum("revenue").alias("revenue"),
        F.sum(F.col("revenue") * F.col("revenue")).alias("revenue_sq"),
    ]
    by_segment = per_customer.groupBy("segment", "arm").agg(*sums)
    overall = per_customer.groupBy("arm").agg(*sums).select(F.lit(ALL).alias("segment"), "*")
    return by_segment.unionByName(overall)
