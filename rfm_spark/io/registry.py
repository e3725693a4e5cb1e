"""Saved models and fits: one Delta table, ``model_versions``, lists every version of each kind.

A kind (``rfm_clusters``, ``churn``, ``clv``) has versions 1, 2, ...; each row holds its MLlib
folder under ``WAREHOUSE/models/<kind>/v<N>`` (none for a CLV fit, whose numbers are the
metadata) and its metadata as JSON text. The newest version of a kind is the one in use, so a
retrain never overwrites the model that made earlier results, and the warehouse can be asked
which model made what (``SELECT * FROM model_versions``). Being a Delta table written by
Spark, it works on any file system and from a Spark Connect client.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from rfm_spark.errors import ModelError
from rfm_spark.io.store import open_store
from rfm_spark.paths import join
from rfm_spark.schemas import MODELS_PARTITION, MODELS_SCHEMA, MODELS_TABLE


@dataclass(frozen=True)
class Saved:
    """One saved version: its number, its MLlib folder (None for a fit) and its metadata."""

    kind: str
    version: int
    path: str | None
    metadata: dict[str, Any]


def model_folder(warehouse: str, kind: str, version: int) -> str:
    """Where version ``version`` of ``kind`` keeps its MLlib files."""
    return join(warehouse, "models", kind, f"v{version}")


def _rows(spark: SparkSession, warehouse: str, kind: str) -> list[Any]:
    store = open_store(spark)
    table = join(warehouse, MODELS_TABLE)
    if not store.exists(table):
        return []
    return (
        store.read(table)
        .where(F.col(MODELS_PARTITION) == kind)
        .select("version", "path", "created_at", "metadata")
        .collect()
    )


def versions(spark: SparkSession, warehouse: str, kind: str) -> list[int]:
    """The saved versions of ``kind``, in order."""
    return sorted(int(r["version"]) for r in _rows(spark, warehouse, kind))


def next_version(spark: SparkSession, warehouse: str, kind: str) -> int:
    """The number the next save of ``kind`` gets."""
    return max(versions(spark, warehouse, kind), default=0) + 1


def record(
    spark: SparkSession,
    warehouse: str,
    kind: str,
    version: int,
    metadata: dict[str, Any],
    *,
    path: str | None = None,
) -> Saved:
    """Commit version ``version`` of ``kind`` (its files already written), making it the one
    in use. The kind's rows are rewritten in one commit, so two saves at once cannot both win.

    Raises:
        ModelError: The version is taken (another save got there first).
    """
    rows = _rows(spark, warehouse, kind)
    if any(int(r["version"]) == version for r in rows):
        raise ModelError(f"{kind} version {version} was saved meanwhile; run it again")
    now = dt.datetime.now(dt.timezone.utc)
    text = json.dumps({**metadata, "version": version}, sort_keys=True)
    new = [(kind, version, path, now, text)]
    old = [(kind, int(r["version"]), r["path"], r["created_at"], r["metadata"]) for r in rows]
    frame = spark.createDataFrame(old + new, MODELS_SCHEMA)
    open_store(spark).write_partition(
        frame,
        join(warehouse, MODELS_TABLE),
        partition_column=MODELS_PARTITION,
        partition_value=kind,
        metadata={"kind": kind, "version": str(version)},
    )
    return Saved(kind, version, path, {**metadata, "version": version})


def current(
    spark: SparkSession, warehouse: str, kind: str, version: int | None = None
) -> Saved | None:
    """Version ``version`` of ``kind`` (the newest when None); None when none was ever saved.

    Raises:
        ModelError: ``version`` is not among the saved ones, or its metadata is unreadable.
    """
    rows = {int(r["version"]): r for r in _rows(spark, warehouse, kind)}
    if not rows:
        if version is not None:
            raise ModelError(f"{kind} version {version} not found: no version saved yet")
        return None
    chosen = max(rows) if version is None else version
    if chosen not in rows:
        have = ", ".join(f"v{v}" for v in sorted(rows))
        raise ModelError(f"{kind} version {chosen} not found (versions: {have})")
    row = rows[chosen]
    try:
        metadata = json.loads(row["metadata"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"the metadata of {kind} version {chosen} is unreadable: {exc}") from None
    return Saved(kind, chosen, row["path"], metadata)
