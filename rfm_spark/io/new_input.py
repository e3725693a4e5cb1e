"""Finding the input rows not read before: Structured Streaming with an ``availableNow`` trigger.

The query reads everything that arrived since its last run (new files of a folder, new commits
of a Delta table) in one or more micro-batches, hands each to the caller, and stops. Its
checkpoint, under the warehouse, remembers what was read; a micro-batch that failed or was cut
short by a crash is read again by the next run with the same batch id, so the caller makes its
writes idempotent on that id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from rfm_spark.errors import DataError, java_error_line
from rfm_spark.paths import is_uri


@dataclass
class _Outcome:
    batches: list[int] = field(default_factory=list)
    error: BaseException | None = None


def _location(path: str) -> str:
    """``path`` as a URI Hadoop accepts: a local path made absolute (``./warehouse`` is not)."""
    return path if is_uri(path) else Path(path).resolve().as_uri()


def read_new_rows(
    stream: DataFrame, checkpoint: str, handle: Callable[[DataFrame, int], None]
) -> list[int]:
    """Run ``handle(rows, batch_id)`` on every micro-batch of new rows, then stop.

    Args:
        stream: A streaming DataFrame over the input.
        checkpoint: The query's checkpoint folder (it records what was read).
        handle: Called once per micro-batch; an exception stops the query, and the batch is
            read again by the next run.

    Returns:
        The ids of the micro-batches handled (empty when nothing new arrived).

    Raises:
        Whatever ``handle`` raised, as raised; :class:`DataError` when the query failed on its
        own (an unreadable new file, say).
    """
    outcome = _Outcome()

    def each(rows: DataFrame, batch_id: int) -> None:
        try:
            handle(rows, batch_id)
        except BaseException as exc:
            outcome.error = exc
            raise
        outcome.batches.append(batch_id)

    query = (
        stream.writeStream.foreachBatch(each)
        .option("checkpointLocation", _location(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        if outcome.error is not None:
            raise outcome.error from None
        raise DataError(
            f"reading the new input failed: {java_error_line(exc) or exc}. Nothing of the "
            "failed batch was kept; fix the input and run again"
        ) from exc
    return outcome.batches


def _hadoop_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm: Any = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(_location(path))
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def checkpoint_exists(spark: SparkSession, checkpoint: str) -> bool:
    """Whether a query has recorded what it read in ``checkpoint`` (any file system)."""
    fs, hpath = _hadoop_path(spark, checkpoint)
    return bool(fs.exists(hpath))


def remove_checkpoint(spark: SparkSession, checkpoint: str) -> None:
    """Forget what was read: the next query reads the whole input again."""
    fs, hpath = _hadoop_path(spark, checkpoint)
    fs.delete(hpath, True)


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The id of the query that owns ``checkpoint`` (Spark writes it when the query first
    starts): a new checkpoint is a new id, so writes keyed on it never collide with those of
    an earlier checkpoint at the same place."""
    fs, hpath = _hadoop_path(spark, checkpoint.rstrip("/") + "/metadata")
    jvm: Any = spark.sparkContext._jvm
    stream = fs.open(hpath)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        text = reader.readLine()
    finally:
        stream.close()
    return str(json.loads(text)["id"])
