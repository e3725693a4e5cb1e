"""Saving and loading cluster models: ``WAREHOUSE/models/rfm_clusters/v{N}`` (MLlib format),
recorded in ``model_versions`` (:mod:`.registry`) with
:meth:`~rfm_spark.clustering.ClusterModel.metadata`. The newest version is the one in use; a
retrain never overwrites the model that produced earlier snapshots' clusters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from rfm_spark import __version__
from rfm_spark.clustering.model import ClusterModel, TrainResult, json_float
from rfm_spark.errors import ModelError
from rfm_spark.io import registry
from rfm_spark.paths import absolute

__all__ = ["KIND", "load_model", "save_model"]

KIND = "rfm_clusters"


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message: a JVM stack trace follows it."""
    return str(exc).strip().splitlines()[0]


def _saved_metadata(model: ClusterModel, result: TrainResult | None) -> dict[str, Any]:
    """The model's metadata plus when and by what it was saved, and how it was trained."""
    meta = model.metadata()
    meta["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta["rfm_spark_version"] = __version__
    if result is not None:
        meta["training"] = {
            "customers": result.customers,
            "scores": [
                {"k": s.k, "silhouette": json_float(s.silhouette), "cost": s.cost}
                for s in result.scores
            ],
            "reason": result.reason,
            "matched": {str(i): d for i, d in result.matched.items()},
            "appeared": result.appeared,
            "vanished": result.vanished,
        }
    return meta


def save_model(
    result_or_model: TrainResult | ClusterModel,
    warehouse: str,
    *,
    spark: SparkSession | None = None,
) -> ClusterModel:
    """Save a model as the next version and make it the current one.

    Writes ``WAREHOUSE/models/rfm_clusters/v{N}`` (the MLlib pipeline) and records version
    ``N`` in ``model_versions`` with everything in :meth:`ClusterModel.metadata` (plus the k
    scores and the reason when given a :class:`TrainResult`).

    Args:
        result_or_model: What :func:`~rfm_spark.clustering.train` returned, or its model.
        warehouse: Warehouse root.
        spark: The session (the active one by default).

    Returns:
        The model with its ``version`` and ``path`` set.

    Raises:
        ModelError: The model has no pipeline, or the version was saved meanwhile.
    """
    result = result_or_model if isinstance(result_or_model, TrainResult) else None
    model = result.model if result is not None else result_or_model
    assert isinstance(model, ClusterModel)
    if model.pipeline is None:
        raise ModelError("the model has no fitted pipeline to save")
    spark = spark or SparkSession.active()
    version = registry.next_version(spark, warehouse, KIND)
    path = registry.model_folder(warehouse, KIND, version)
    saved = replace(model, version=version, path=path)
    try:
        model.pipeline.write().overwrite().save(absolute(path))
    except Exception as exc:
        raise ModelError(f"could not save the cluster model to {path}: {_first_line(exc)}") from exc
    registry.record(spark, warehouse, KIND, version, _saved_metadata(saved, result), path=path)
    return saved


def load_model(
    spark: SparkSession, warehouse: str, version: int | None = None
) -> ClusterModel | None:
    """The current model (or ``version``) under the warehouse, or None when there is none.

    Args:
        spark: The session.
        warehouse: Warehouse root.
        version: A specific version; the newest when None.

    Returns:
        The model with its pipeline, or None when no model was ever saved.

    Raises:
        ModelError: The metadata is unreadable, or ``version`` does not exist.
    """
    saved = registry.current(spark, warehouse, KIND, version)
    if saved is None or saved.path is None:
        return None
    try:
        model = ClusterModel.from_metadata(saved.metadata, saved.path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"the metadata of cluster model version {saved.version} is not valid "
            f"({type(exc).__name__}: {exc}); retrain with 'rfm-spark train'"
        ) from exc
    try:
        pipeline = PipelineModel.load(absolute(saved.path))
    except Exception as exc:
        raise ModelError(
            f"cannot load the MLlib pipeline of cluster model version {saved.version} from "
            f"{saved.path}: {_first_line(exc)}; retrain with 'rfm-spark train'"
        ) from exc
    return replace(model, pipeline=pipeline)
