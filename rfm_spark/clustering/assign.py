"""Applying a model: each customer's stable cluster id and name as two new columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.clustering import stages
from rfm_spark.clustering.model import ClusterModel
from rfm_spark.errors import MissingColumnsError, ModelError


def _literal_map(pairs: Mapping[int, Any], value_type: str) -> Any:
    """A literal ``map`` column of ``pairs``: the model's few entries ride in the plan."""
    items = sorted(pairs.items())
    return F.create_map(
        *[x for key, value in items for x in (F.lit(key), F.lit(value).cast(value_type))]
    )


def assign_clusters(df: DataFrame, model: ClusterModel | None) -> DataFrame:
    """Add each customer's stable cluster id and name.

    A narrow transformation: no row is dropped or duplicated, and nulls in the features count
    as 0. Existing ``cluster_id`` / ``cluster_name`` columns are replaced.

    Args:
        df: Rows with ``recency_days``, ``frequency`` and ``monetary`` (any other columns are
            kept).
        model: The model to apply, or None (no model yet: both columns are null).

    Returns:
        ``df``'s columns (without old ``cluster_id`` / ``cluster_name``) plus ``cluster_id``
        (int) and ``cluster_name`` (string).

    Raises:
        MissingColumnsError: A feature column is missing (only checked with a model).
        ModelError: The model has no fitted pipeline.
    """
    base = df.drop("cluster_id", "cluster_name")
    # exact names: a column called "a.b" or holding a backtick is kept as it is
    keep = [F.col("`" + c.replace("`", "``") + "`") for c in base.columns]
    if model is None:
        return base.select(
            *keep,
            F.lit(None).cast("int").alias("cluster_id"),
            F.lit(None).cast("string").alias("cluster_name"),
        )
    missing = [f for f in model.features if f not in base.columns]
    if missing:
        raise MissingColumnsError("the rows to assign clusters to", missing, base.columns)
    if model.pipeline is None:
        raise ModelError(f"cluster model version {model.version} has no fitted pipeline")
    stable = _literal_map(model.id_map, "int")[F.col(stages.RAW).cast("int")]
    names = _literal_map(model.names, "string")
    return (
        model.pipeline.transform(base)
        .select(*keep, stable.alias("cluster_id"))
        .withColumn("cluster_name", names[F.col("cluster_id")])
    )
