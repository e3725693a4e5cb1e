"""Cluster profiles: size, revenue share and mean features of every cluster of a model.

A profile row per cluster, empty ones included, so that a report shows a cluster that lost all
its customers instead of silently dropping it.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.clustering.model import ClusterModel

PROFILE_COLUMNS: tuple[str, ...] = (
    "cluster_id",
    "cluster_name",
    "customers",
    "revenue_share",
    "mean_recency_days",
    "mean_frequency",
    "mean_monetary",
    "model_version",
)


def _clusters(assigned: DataFrame, model: ClusterModel) -> DataFrame:
    """Every cluster id of ``model`` and its name, one row each."""
    return assigned.sparkSession.createDataFrame(
        [(i, model.names[i]) for i in sorted(model.centroids)],
        T.StructType(
            [
                T.StructField("cluster_id", T.IntegerType()),
                T.StructField("cluster_name", T.StringType()),
            ]
        ),
    )


def _stats(assigned: DataFrame) -> DataFrame:
    """Customers, revenue share and mean features per assigned ``cluster_id``."""
    monetary = F.col("monetary").cast("double")
    stats = assigned.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum(monetary).alias("_revenue"),
        F.avg(F.col("recency_days").cast("double")).alias("mean_recency_days"),
        F.avg(F.col("frequency").cast("double")).alias("mean_frequency"),
        F.avg(monetary).alias("mean_monetary"),
    )
    # a handful of rows: the whole-table window is cheap here
    total = F.sum("_revenue").over(Window.partitionBy(F.lit(0)))
    return stats.withColumn(
        "revenue_share", F.when(total != 0, F.col("_revenue") / total).otherwise(F.lit(0.0))
    )


def cluster_profiles(assigned: DataFrame, model: ClusterModel) -> DataFrame:
    """Size, revenue share and mean features of every cluster of ``model``.

    Every cluster of the model has a row, with 0 customers when none is assigned to it; rows
    without a cluster are counted in the revenue total only.

    Args:
        assigned: Output of :func:`~rfm_spark.clustering.assign_clusters` (``cluster_id``,
            ``recency_days``, ``frequency``, ``monetary``).
        model: The model that assigned the clusters.

    Returns:
        ``cluster_id`` (int), ``cluster_name`` (string), ``customers`` (bigint),
        ``revenue_share`` (double, cluster's net spend over everyone's), ``mean_recency_days``,
        ``mean_frequency``, ``mean_monetary`` (double, null for an empty cluster) and
        ``model_version`` (string, the partition of the ``cluster_profiles`` table).
    """
    return (
        _clusters(assigned, model)
        .join(_stats(assigned), on="cluster_id", how="left")
        .select(
            F.col("cluster_id").cast("int").alias("cluster_id"),
            F.col("cluster_name").cast("string").alias("cluster_name"),
            F.coalesce(F.col("customers"), F.lit(0)).cast("bigint").alias("customers"),
            F.coalesce(F.col("revenue_share"), F.lit(0.0)).cast("double").alias("revenue_share"),
            F.col("mean_recency_days").cast("double").alias("mean_recency_days"),
            F.col("mean_frequency").cast("double").alias("mean_frequency"),
            F.col("mean_monetary").cast("double").alias("mean_monetary"),
            F.lit(str(model.version)).cast("string").alias("model_version"),
        )
        .orderBy("cluster_id")
    )
