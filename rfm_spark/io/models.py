"""Saving and loading cluster models under ``WAREHOUSE/models/rfm_clusters/``.

Each version is a folder ``v{N}`` holding ``pipeline`` (MLlib format) and ``metadata.json``
(:meth:`~rfm_spark.clustering.ClusterModel.metadata`); ``CURRENT`` names the version in use, so
switching back to an older model is one small write and a retrain never overwrites the model
that produced earlier snapshots' clusters. Files are written through Hadoop's ``FileSystem``,
so the warehouse can be a local path or any Hadoop URI.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from rfm_spark import __version__
from rfm_spark.clustering.model import ClusterModel, TrainResult, json_float
from rfm_spark.errors import ModelError
from rfm_spark.io.files import HadoopFiles
from rfm_spark.paths import join

__all__ = ["MODELS_DIR", "load_model", "save_model"]

MODELS_DIR = "models/rfm_clusters"


def _root(warehouse: str) -> str:
    return join(warehouse, MODELS_DIR)


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

    Writes ``WAREHOUSE/models/rfm_clusters/v{N}/pipeline`` (MLlib format) and
    ``v{N}/metadata.json`` (everything in :meth:`ClusterModel.metadata`, plus the k scores and
    the reason when given a :class:`TrainResult`), then points ``CURRENT`` at ``N``.
    ``N`` is one more than the highest version present.

    Args:
        result_or_model: What :func:`~rfm_spark.clustering.train` returned, or its model.
        warehouse: Warehouse root.
        spark: Session for file access (the active one by default).

    Returns:
        The model with its ``version`` and ``path`` set.

    Raises:
        ModelError: The model has no pipeline, or the version folder appeared meanwhile.
    """
    result = result_or_model if isinstance(result_or_model, TrainResult) else None
    model = result.model if result is not None else result_or_model
    assert isinstance(model, ClusterModel)
    if model.pipeline is None:
        raise ModelError("the model has no fitted pipeline to save")
    files = HadoopFiles(spark or SparkSession.active())
    root = _root(warehouse)
    version = max(files.versions(root), default=0) + 1
    path = f"{root}/v{version}"
    saved = replace(model, version=version, path=path)
    try:
        model.pipeline.write().save(f"{path}/pipeline")
    except Exception as exc:
        raise ModelError(
            f"could not save the cluster model to {path}: {_first_line(exc)}; "
            "another train may have saved the same version, run it again"
        ) from exc
    meta = _saved_metadata(saved, result)
    files.write(f"{path}/metadata.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    files.write(f"{root}/CURRENT", f"{version}\n")
    return saved


def _current_version(files: HadoopFiles, root: str) -> int | None:
    """The version ``CURRENT`` names, or None when no model was ever saved."""
    current = f"{root}/CURRENT"
    if not files.exists(current):
        return None
    text = files.read(current).strip()
    if not text.isdigit():
        raise ModelError(
            f"{current} should hold a model version number but holds {text[:40]!r}; "
            f"write the number of one of the folders v1, v2, ... in {root} into it"
        )
    return int(text)


def _read_metadata(files: HadoopFiles, root: str, version: int) -> ClusterModel:
    """The model described by version ``version``'s metadata, without its pipeline."""
    path = f"{root}/v{version}"
    meta_path = f"{path}/metadata.json"
    if not files.exists(meta_path):
        have = ", ".join(f"v{v}" for v in files.versions(root)) or "none"
        raise ModelError(
            f"cluster model version {version} not found: no {meta_path} (versions: {have}); "
            "train a model or pick an existing version"
        )
    try:
        return ClusterModel.from_metadata(json.loads(files.read(meta_path)), path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{meta_path} is not a valid cluster model metadata file ({type(exc).__name__}: "
            f"{exc}); retrain with 'rfm-spark train'"
        ) from exc


def load_model(
    spark: SparkSession, warehouse: str, version: int | None = None
) -> ClusterModel | None:
    """The current model (or ``version``) under the warehouse, or None when there is none.

    Args:
        spark: The session.
        warehouse: Warehouse root.
        version: A specific version; the one in ``CURRENT`` when None.

    Returns:
        The model with its pipeline, or None when no model was ever saved.

    Raises:
        ModelError: ``CURRENT`` or the metadata is unreadable, or ``version`` does not exist.
    """
    files = HadoopFiles(spark)
    root = _root(warehouse)
    if version is None:
        version = _current_version(files, root)
        if version is None:
            return None
    model = _read_metadata(files, root, version)
    try:
        pipeline = PipelineModel.load(f"{model.path}/pipeline")
    except Exception as exc:
        raise ModelError(
            f"cannot load the MLlib pipeline of cluster model version {version} from "
            f"{model.path}/pipeline: {_first_line(exc)}; retrain with 'rfm-spark train'"
        ) from exc
    return replace(model, pipeline=pipeline)
