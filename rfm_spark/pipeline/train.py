"""The train run: predictive segments learnt from a committed snapshot.

Training reads the features as ``customer_segments`` holds them rather than recomputing
them, so the model learns from exactly what readers of that snapshot see.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark import __version__
from rfm_spark.clustering import ClusterModel, TrainResult, assign_clusters, cluster_profiles, train
from rfm_spark.config import Config
from rfm_spark.errors import UsageError
from rfm_spark.io.models import load_model, save_model
from rfm_spark.io.store import TableStore
from rfm_spark.progress import Progress
from rfm_spark.schemas import SNAPSHOT_COLUMN


@dataclass(frozen=True)
class TrainRunResult:
    """What ``rfm-spark train`` did: the training result, the saved model, the profiles."""

    result: TrainResult
    model: ClusterModel
    profiles: list[dict[str, Any]]
    profiles_version: int


def run_train(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    progress: Progress | None = None,
) -> TrainRunResult:
    """Train predictive segments on the features of a committed snapshot and save the model.

    The features come from ``customer_segments`` at ``snapshot_date`` (run ``segment`` first).
    A previous model, when there is one, anchors the cluster ids (Hungarian matching). The
    ``cluster_profiles`` table gets the new model's profiles as partition ``model_version``.

    Raises:
        UsageError: The table or the snapshot is not there yet.
    """
    from rfm_spark.io.store import open_store

    progress = progress or Progress("train")
    store = open_store(spark)
    features = _snapshot_features(store, config.table_path(), snapshot_date)
    try:
        result = _train(spark, config, features, snapshot_date, progress)
        with progress.step("saving the model and its cluster profiles"):
            model = save_model(result, config.warehouse, spark=spark)
            profiles = cluster_profiles(assign_clusters(features, model), model)
            version = store.write_partition(
                profiles,
                config.table_path("cluster_profiles"),
                partition_column="model_version",
                partition_value=str(model.version),
                metadata={
                    "model_version": str(model.version),
                    "snapshot_date": snapshot_date.isoformat(),
                    "rfm_spark_version": __version__,
                },
            )
            rows = [r.asDict() for r in profiles.orderBy("cluster_id").collect()]
    finally:
        features.unpersist()
    return TrainRunResult(result=result, model=model, profiles=rows, profiles_version=version)


def _snapshot_features(store: TableStore, path: str, snapshot_date: dt.date) -> DataFrame:
    """The cached rows of one committed snapshot (read by training and profiling both).

    Raises:
        UsageError: There is no table at ``path`` (the caller has nothing to release then).
    """
    if not store.exists(path):
        raise UsageError(
            f"no table at {path}; run 'rfm-spark segment --snapshot-date {snapshot_date}' first"
        )
    return (
        store.read(path)
        .filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )


def _train(
    spark: SparkSession,
    config: Config,
    features: DataFrame,
    snapshot_date: dt.date,
    progress: Progress,
) -> TrainResult:
    """Fit the configured clustering, anchored on the previous model's ids when there is one.

    Raises:
        UsageError: The snapshot is not in the table.
    """
    path = config.table_path()
    if features.limit(1).count() == 0:
        raise UsageError(
            f"snapshot {snapshot_date} is not in {path}; run 'rfm-spark segment "
            f"--snapshot-date {snapshot_date}' first (see 'rfm-spark history')"
        )
    settings = config.clustering
    previous = load_model(spark, config.warehouse)
    ks = f"k={settings.k}" if settings.k else f"k in {settings.k_min}..{settings.k_max}"
    with progress.step(f"training {settings.algorithm} ({ks}) on snapshot {snapshot_date}"):
        return train(
            features,
            snapshot_date=snapshot_date,
            k=settings.k,
            k_min=settings.k_min,
            k_max=settings.k_max,
            sample_fraction=settings.sample_fraction,
            max_sample_rows=settings.max_sample_rows,
            seed=settings.seed,
            algorithm=settings.algorithm,
            previous=previous,
        )
