"""Saving and loading CLV fits under ``WAREHOUSE/models/clv/``: ``v1/fit.json``, ``v2/...``
and ``CURRENT`` naming the latest, as the cluster models are kept."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import SparkSession

from rfm_spark.errors import ModelError, UsageError
from rfm_spark.io.files import HadoopFiles
from rfm_spark.paths import join

FITS_DIR = "models/clv"


def save_fit(spark: SparkSession, warehouse: str, record: dict[str, Any]) -> str:
    """Write ``record`` as the next version's ``fit.json`` and make it current; its path."""
    files = HadoopFiles(spark)
    root = join(warehouse, FITS_DIR)
    version = max(files.versions(root), default=0) + 1
    path = f"{root}/v{version}/fit.json"
    files.write(path, json.dumps({**record, "version": version}, indent=2) + "\n")
    files.write(f"{root}/CURRENT", f"{version}\n")
    return path


def load_fit(spark: SparkSession, warehouse: str, path: str | None = None) -> dict[str, Any]:
    """A fit from ``path`` (a ``fit.json`` or ``clv fit --output`` file) or the warehouse's
    current one.

    Raises:
        UsageError: No fit saved yet, or no such file.
        ModelError: A file that is not a fit.
    """
    files = HadoopFiles(spark)
    if path is None:
        current = join(warehouse, FITS_DIR, "CURRENT")
        if not files.exists(current):
            raise UsageError(
                f"no CLV fit under {join(warehouse, FITS_DIR)}; run 'rfm-spark clv fit' first"
            )
        path = join(warehouse, FITS_DIR, f"v{files.read(current).strip()}", "fit.json")
    if not files.exists(path):
        raise UsageError(f"CLV fit {path!r} does not exist; pass a file 'clv fit' wrote")
    try:
        record = json.loads(files.read(path))
        _ = (record["bgnbd"]["r"], record["gamma_gamma"]["p"])  # the keys must be there
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a CLV fit ({type(exc).__name__}: {exc})") from None
    return dict(record)
