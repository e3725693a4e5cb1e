"""Saving and loading churn models under ``WAREHOUSE/models/churn/``: ``vN/pipeline`` (MLlib
format), ``vN/metadata.json`` (the features, the candidates' AUCs, the importances) and
``CURRENT`` naming the latest."""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from rfm_spark.errors import ModelError, UsageError
from rfm_spark.io.files import HadoopFiles, location
from rfm_spark.paths import join

CHURN_DIR = "models/churn"


def save_churn_model(
    spark: SparkSession, warehouse: str, fitted: PipelineModel, metadata: dict[str, Any]
) -> tuple[int, str]:
    """Save the next version and make it current; its number and folder."""
    files = HadoopFiles(spark)
    root = join(warehouse, CHURN_DIR)
    version = max(files.versions(root), default=0) + 1
    path = f"{root}/v{version}"
    fitted.write().overwrite().save(location(f"{path}/pipeline"))
    files.write(f"{path}/metadata.json", json.dumps({**metadata, "version": version}, indent=2))
    files.write(f"{root}/CURRENT", f"{version}\n")
    return version, path


def load_churn_model(spark: SparkSession, warehouse: str) -> tuple[PipelineModel, dict[str, Any]]:
    """The current model and its metadata.

    Raises:
        UsageError: No model trained yet.
        ModelError: Its files are unreadable.
    """
    files = HadoopFiles(spark)
    root = join(warehouse, CHURN_DIR)
    if not files.exists(f"{root}/CURRENT"):
        raise UsageError(f"no churn model under {root}; run 'rfm-spark churn train' first")
    path = f"{root}/v{files.read(f'{root}/CURRENT').strip()}"
    try:
        metadata = json.loads(files.read(f"{path}/metadata.json"))
        return PipelineModel.load(location(f"{path}/pipeline")), metadata
    except Exception as exc:  # missing files, a damaged pipeline
        raise ModelError(f"cannot load the churn model {path}: {exc}") from None
