"""The aggregates a report is drawn from, as DataFrames: no Spark action runs here.

Every function takes rows of ``customer_segments`` (or of the quarantine table) and returns a
small DataFrame whose size depends on the scheme, the score bins or a cap, never on the number
of customers, so only aggregates reach the driver (:mod:`rfm_spark.pipeline.report` collects
them).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.schemas import SNAPSHOT_COLUMN

# a customer is an outlier when their spend lies this many interquartile ranges above the
# upper quartile of the spenders' spend: Tukey's "far out" fence. (On the log scale the same
# fence flagged nobody in the demo data, whose spend spans four decades without a tail.)
OUTLIER_IQRS = 3.0
OUTLIER_COLUMNS = [
    "customer_id", "segment", "monetary", "frequency", "recency_days", "avg_order_value",
]  # fmt: skip
QUANTILE_ACCURACY = 10_000  # percentile_approx: relative error about 1/10,000


def headline(segments: DataFrame, snapshots: Sequence[dt.date]) -> DataFrame:
    """Customers, revenue (net spend in the window) and mean spend per snapshot.

    Returns:
        ``snapshot_date``, ``customers``, ``revenue``, ``mean_monetary``, ``median_recency``.
    """
    return (
        segments.filter(F.col(SNAPSHOT_COLUMN).isin(list(snapshots)))
        .groupBy(SNAPSHOT_COLUMN)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("monetary").cast("double").alias("revenue"),
            F.avg("monetary").cast("double").alias("mean_monetary"),
            F.percentile_approx("recency_days", 0.5, QUANTILE_ACCURACY).alias("median_recency"),
        )
    )


def segment_sizes(segments: DataFrame, snapshots: Sequence[dt.date]) -> DataFrame:
    """Customers and revenue per segment of each snapshot.

    Returns:
        ``snapshot_date``, ``segment``, ``customers``, ``revenue``.
    """
    return (
        segments.filter(F.col(SNAPSHOT_COLUMN).isin(list(snapshots)))
        .groupBy(SNAPSHOT_COLUMN, "segment")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("monetary").cast("double").alias("revenue"),
        )
    )


def rf_grid(snapshot: DataFrame) -> DataFrame:
    """Customers and mean spend per (R score, F score) cell.

    Returns:
        ``r_score``, ``f_score``, ``customers``, ``mean_monetary``.
    """
    return snapshot.groupBy("r_score", "f_score").agg(
        F.count(F.lit(1)).alias("customers"),
        F.avg("monetary").cast("double").alias("mean_monetary"),
    )


def spread(snapshot: DataFrame) -> DataFrame:
    """One row: the ranges of the three features and the quartiles of the spenders' spend,
    which place the histogram bins and the outlier fence.

    Returns:
        ``max_recency``, ``max_frequency``, ``max_monetary``, ``q1``, ``q3`` (of the spend of
        customers who spent more than 0), ``spenders`` (how many they are).
    """
    spend = F.when(F.col("monetary") > 0, F.col("monetary").cast("double"))
    quartiles = F.percentile_approx(spend, [0.25, 0.75], QUANTILE_ACCURACY)
    return snapshot.agg(
        F.max("recency_days").alias("max_recency"),
        F.max("frequency").alias("max_frequency"),
        F.max("monetary").cast("double").alias("max_monetary"),
        quartiles[0].alias("q1"),
        quartiles[1].alias("q3"),
        F.count(spend).alias("spenders"),
    )


def outlier_floor(q1: float | None, q3: float | None) -> float | None:
    """The spend above which a customer is an outlier (None without positive spenders)."""
    if q1 is None or q3 is None:
        return None
    return float(q3 + OUTLIER_IQRS * (q3 - q1))


def outliers(snapshot: DataFrame, floor: float, cap: int) -> DataFrame:
    """The ``cap`` highest spenders above ``floor``, with their figures.

    Returns:
        ``customer_id``, ``segment``, ``monetary``, ``frequency``, ``recency_days``,
        ``avg_order_value``; highest spend first (ties by customer id).
    """
    return (
        snapshot.filter(F.col("monetary") > F.lit(floor))
        .select(*OUTLIER_COLUMNS)
        .orderBy(F.col("monetary").desc(), F.col("customer_id"))
        .limit(cap)
    )


def count_above(snapshot: DataFrame, floor: float) -> DataFrame:
    """One row: ``outliers``, the customers spending more than ``floor``, and their
    ``revenue``."""
    above = snapshot.filter(F.col("monetary") > F.lit(floor))
    return above.agg(
        F.count(F.lit(1)).alias("outliers"), F.sum("monetary").cast("double").alias("revenue")
    )


def log_edges(top: float, per_decade: int = 4) -> list[float]:
    """Bin edges 1, 10^(1/per_decade), ... up to the first edge above ``top`` (at least 10)."""
    decades = max(1.0, math.log10(max(top, 1.0)))
    steps = math.ceil(decades * per_decade) + 1
    return [round(10 ** (i / per_decade), 6) for i in range(steps + 1)]


def linear_edges(top: float, bins: int = 30) -> list[float]:
    """``bins`` equal bins from 0 covering ``top`` (integer widths of at least 1)."""
    width = max(1, math.ceil((top + 1) / bins))
    return [float(i * width) for i in range(bins + 1)]


def _bucket(value: Column, edges: Sequence[float]) -> Column:
    """The index of the bin holding ``value``: -1 below the first edge, the last bin takes
    values beyond the last edge."""
    index = F.lit(len(edges) - 2)
    for i in range(len(edges) - 2, 0, -1):
        index = F.when(value < F.lit(edges[i]), F.lit(i - 1)).otherwise(index)
    return F.when(value < F.lit(edges[0]), F.lit(-1)).otherwise(index)


def histogram(snapshot: DataFrame, column: str, edges: Sequence[float]) -> DataFrame:
    """Customers per bin of ``column`` (``bin`` -1: below the first edge, e.g. spend <= 0).

    Returns:
        ``bin`` (int), ``customers`` (bigint).
    """
    value = F.col(column).cast("double")
    return (
        snapshot.select(_bucket(value, edges).alias("bin"))
        .groupBy("bin")
        .agg(F.count(F.lit(1)).alias("customers"))
    )


def cluster_profile(snapshot: DataFrame) -> DataFrame:
    """Customers and mean features per k-means cluster (rows with a cluster only).

    Returns:
        ``cluster_id``, ``cluster_name``, ``customers``, ``mean_recency``, ``mean_frequency``,
        ``mean_monetary``.
    """
    return (
        snapshot.filter(F.col("cluster_id").isNotNull())
        .groupBy("cluster_id", "cluster_name")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.avg("recency_days").cast("double").alias("mean_recency"),
            F.avg("frequency").cast("double").alias("mean_frequency"),
            F.avg("monetary").cast("double").alias("mean_monetary"),
        )
    )


def attribute_counts(snapshot: DataFrame) -> DataFrame:
    """Customers per attribute dimension, attribute segment and RFM segment (one aggregation
    for every dimension: the map's entries exploded).

    Returns:
        ``dimension``, ``attribute``, ``segment``, ``customers``.
    """
    entries = snapshot.select(
        "segment", F.explode(F.col("attribute_segments")).alias("dimension", "attribute")
    )
    return entries.groupBy("dimension", "attribute", "segment").agg(
        F.count(F.lit(1)).alias("customers")
    )


def predictions_by_segment(
    snapshot: DataFrame, churn: DataFrame | None, clv: DataFrame | None
) -> DataFrame:
    """Per segment: customers, and where scored for the snapshot the mean churn probability,
    the customers at high churn risk, the mean probability alive and the summed CLV.

    Args:
        snapshot: The snapshot's ``customer_segments`` rows.
        churn: That snapshot's ``customer_churn`` rows, or None.
        clv: That snapshot's ``customer_clv`` rows, or None.

    Returns:
        ``segment``, ``customers``, ``mean_churn``, ``high_risk``, ``mean_p_alive``, ``clv``
        (null where the table is None).
    """
    rows = snapshot.select("customer_id", "segment")
    none = F.lit(None).cast("double")
    if churn is not None:
        rows = rows.join(churn.select("customer_id", "churn_probability", "churn_risk"),
                         on="customer_id", how="left")  # fmt: skip
    if clv is not None:
        rows = rows.join(clv.select("customer_id", "p_alive", "clv"), on="customer_id", how="left")
    return rows.groupBy("segment").agg(
        F.count(F.lit(1)).alias("customers"),
        (F.avg("churn_probability") if churn is not None else none).alias("mean_churn"),
        (F.count(F.when(F.col("churn_risk") == "high", 1)) if churn is not None else none)
        .alias("high_risk"),
        (F.avg("p_alive") if clv is not None else none).alias("mean_p_alive"),
        (F.sum("clv") if clv is not None else none).alias("clv"),
    )  # fmt: skip


def quarantine_reasons(quarantine: DataFrame, snapshot_date: dt.date) -> DataFrame:
    """Quarantined rows per reason in the snapshot's partition of the quarantine table.

    Returns:
        ``reason``, ``rows``.
    """
    return (
        quarantine.filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        .groupBy("reason")
        .agg(F.count(F.lit(1)).alias("rows"))
    )


SCORED = {"r": "recency_days", "f": "frequency", "m": "monetary"}


def score_ranges(snapshot: DataFrame) -> DataFrame:
    """Per axis and score, the customers and the lowest and highest feature value that got it:
    the cut points as they came out, whatever the scoring method.

    Returns:
        ``axis`` (r, f, m), ``score``, ``customers``, ``low``, ``high``.
    """
    parts = [
        snapshot.groupBy(F.col(f"{axis}_score").alias("score")).agg(
            F.lit(axis).alias("axis"),
            F.count(F.lit(1)).alias("customers"),
            F.min(F.col(feature).cast("double")).alias("low"),
            F.max(F.col(feature).cast("double")).alias("high"),
        )
        for axis, feature in SCORED.items()
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.filter(F.col("score").isNotNull())
