"""Saving and loading churn models: ``WAREHOUSE/models/churn/vN`` (MLlib format) with the
features, the candidates' AUCs and the importances in ``model_versions`` (:mod:`.registry`)."""

from __future__ import annotations

from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from rfm_spark.errors import ModelError, UsageError
from rfm_spark.io import registry
from rfm_spark.paths import absolute

KIND = "churn"


def save_churn_model(
    spark: SparkSession, warehouse: str, fitted: PipelineModel, metadata: dict[str, Any]
) -> tuple[int, str]:
    """Save the next version and make it current; its number and folder."""
    version = registry.next_version(spark, warehouse, KIND)
    path = registry.model_folder(warehouse, KIND, version)
    fitted.write().overwrite().save(absolute(path))
    registry.record(spark, warehouse, KIND, version, metadata, path=path)
    return version, path


def load_churn_model(spark: SparkSession, warehouse: str) -> tuple[PipelineModel, dict[str, Any]]:
    """The current model and its metadata.

    Raises:
        UsageError: No model trained yet.
        ModelError: Its files are unreadable.
    """
    saved = registry.current(spark, warehouse, KIND)
    if saved is None or saved.path is None:
        raise UsageError(f"no churn model under {warehouse}; run 'rfm-spark churn train' first")
    try:
        return PipelineModel.load(absolute(saved.path)), saved.metadata
    except Exception as exc:  # missing files, a damaged pipeline
        raise ModelError(f"cannot load the churn model {saved.path}: {exc}") from None
