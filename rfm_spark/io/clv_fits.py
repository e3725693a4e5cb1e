"""Saving and loading CLV fits: each fit is a version of the kind ``clv`` in
``model_versions`` (:mod:`.registry`), its parameters the row's metadata."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from rfm_spark.errors import ModelError, UsageError
from rfm_spark.io import registry

KIND = "clv"


def save_fit(spark: SparkSession, warehouse: str, record: dict[str, Any]) -> int:
    """Save ``record`` as the next version and make it current; its version."""
    version = registry.next_version(spark, warehouse, KIND)
    registry.record(spark, warehouse, KIND, version, record)
    return version


def check_fit(record: Any, source: str) -> dict[str, Any]:
    """``record`` when it holds a fit's parameters.

    Raises:
        ModelError: It does not (``source`` names where it came from).
    """
    try:
        _ = (record["bgnbd"]["r"], record["gamma_gamma"]["p"])  # the keys must be there
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{source} is not a CLV fit ({type(exc).__name__}: {exc})") from None
    return dict(record)


def load_fit(spark: SparkSession, warehouse: str) -> dict[str, Any]:
    """The warehouse's current fit.

    Raises:
        UsageError: No fit saved yet.
    """
    saved = registry.current(spark, warehouse, KIND)
    if saved is None:
        raise UsageError(f"no CLV fit under {warehouse}; run 'rfm-spark clv fit' first")
    return check_fit(saved.metadata, f"CLV fit version {saved.version}")
