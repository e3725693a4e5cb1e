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
from urllib.parse import unquote, urlsplit

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from rfm_spark.errors import DataError, InputError, java_error_line
from rfm_spark.io import files
from rfm_spark.paths import absolute

# the Delta source's errors for a commit that changed or removed rows it had read
_CHANGED_ROWS = ("DELTA_SOURCE_TABLE_IGNORE_CHANGES", "DELTA_SOURCE_IGNORE_DELETE")


@dataclass
class _Outcome:
    batches: list[int] = field(default_factory=list)
    error: BaseException | None = None


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
        .option("checkpointLocation", absolute(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        if outcome.error is not None:
            raise outcome.error from None
        first = java_error_line(exc) or str(exc)
        if any(code in str(exc) for code in _CHANGED_ROWS):
            raise InputError(
                "the input table has rows updated or deleted since they were read (a commit "
                "other than an append), and it does not record its changes. Turn its change "
                "data feed on (ALTER TABLE ... SET TBLPROPERTIES (delta.enableChangeDataFeed = "
                "true)) and run with --rebuild once: later runs then take updates and deletes "
                "too. Or run with --full for this snapshot"
            ) from None
        raise DataError(
            f"reading the new input failed: {first}. Nothing of the failed batch was kept; fix "
            "the input and run again"
        ) from exc
    return outcome.batches


def checkpoint_exists(spark: SparkSession, checkpoint: str) -> bool:
    """Whether a query has recorded what it read in ``checkpoint`` (any file system): Spark
    writes the query's ``metadata`` there when it first starts."""
    return files.exists(spark, checkpoint.rstrip("/") + "/metadata")


def remove_checkpoint(spark: SparkSession, checkpoint: str) -> None:
    """Forget what was read: the next query reads the whole input again."""
    files.remove(spark, checkpoint)


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The id of the query that owns ``checkpoint`` (Spark writes it when the query first
    starts): a new checkpoint is a new id, so writes keyed on it never collide with those of
    an earlier checkpoint at the same place."""
    metadata = files.read_text(spark, checkpoint.rstrip("/") + "/metadata") or "{}"
    return str(json.loads(metadata.splitlines()[0])["id"])


def _key(uri: str) -> str:
    """A file's location as one string whatever the spelling (``file:/a`` = ``file:///a``,
    escaped or not)."""
    parts = urlsplit(uri)
    return f"{parts.scheme or 'file'}://{parts.netloc}{unquote(parts.path)}"


def files_read(spark: SparkSession, checkpoint: str) -> dict[str, int]:
    """The files a file-source query has read (location -> modification time in ms).

    Spark's file source logs them under ``sources/0`` of the checkpoint: one file per batch
    and, every few batches, a ``.compact`` file with all entries so far; each holds a version
    line, then one JSON entry per file (a file being written is hidden, ``.N.tmp``). Empty when
    the query read no files (a Delta source).
    """
    seen: dict[str, int] = {}
    for line in files.read_lines(spark, checkpoint.rstrip("/") + "/sources/0"):
        if line.startswith("{"):
            entry = json.loads(line)
            seen[_key(entry["path"])] = int(entry["timestamp"])
    return seen


def files_gone(spark: SparkSession, checkpoint: str, folder: str) -> tuple[list[str], list[str]]:
    """The files read before that are no longer there, and those rewritten since (a new
    modification time): the rows taken from them may no longer be the input's."""
    before = files_read(spark, checkpoint)
    if not before:
        return [], []
    now = {_key(p): t for p, t in files.data_files(spark, folder).items()}
    removed = sorted(p for p in before if p not in now)
    rewritten = sorted(p for p, t in before.items() if p in now and now[p] != t)
    return removed, rewritten
