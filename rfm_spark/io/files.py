"""The warehouse's small files, through Spark's own readers and writers.

Side data under the warehouse (streaming checkpoints, the demo data's manifest) and the input
folders' listings are read and written by Spark, on the file system of their URI, so the same
code works on a local disk, on ``s3a://``, ``abfss://`` or ``gs://``, from a driver whose
executors share no disk with it, and from a Spark Connect client that has no JVM at all:

- a small text "file" is a folder that Spark writes with one part file, and reads back whole;
- a folder is removed by overwriting it with nothing (Spark deletes the path first);
- a listing is the ``binaryFile`` source with only the path and modification time selected
  (no file is opened), skipping the hidden names Spark's readers skip.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from rfm_spark.paths import absolute

_MISSING = ("PATH_NOT_FOUND", "Path does not exist")


def missing_path(exc: BaseException) -> bool:
    """Whether a Spark error says that the path it was given does not exist."""
    return any(code in str(exc) for code in _MISSING)


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists at ``path`` (the reader resolves it; no job runs)."""
    try:
        _ = spark.read.format("binaryFile").load(absolute(path)).schema
    except Exception as exc:
        if missing_path(exc):
            return False
        raise
    return True


def read_text(spark: SparkSession, path: str) -> str | None:
    """The text of a file, or of the part files of a folder :func:`write_text` wrote; None when
    there is nothing at ``path``."""
    try:
        rows = spark.read.text(absolute(path), wholetext=True).collect()
    except Exception as exc:
        if missing_path(exc):
            return None
        raise
    return "".join(str(r[0]) for r in rows)


def read_lines(spark: SparkSession, folder: str) -> list[str]:
    """Every line of every (not hidden) file under ``folder``; empty when it is not there."""
    try:
        rows = spark.read.text(absolute(folder)).collect()
    except Exception as exc:
        if missing_path(exc):
            return []
        raise
    return [str(r[0]) for r in rows]


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write ``text`` as the folder ``path`` holding one part file (replacing what was there);
    :func:`read_text` reads it back."""
    frame = spark.createDataFrame([(text,)], "value string").coalesce(1)
    frame.write.mode("overwrite").option("lineSep", "\n").text(absolute(path))


def remove(spark: SparkSession, path: str) -> None:
    """Remove the folder (or file) ``path`` and everything in it: an overwrite with no rows,
    which deletes the path first and leaves only Spark's hidden ``_SUCCESS`` marker."""
    if exists(spark, path):
        empty = spark.createDataFrame([], "value string").coalesce(1)
        empty.write.mode("overwrite").text(absolute(path))


def data_files(spark: SparkSession, folder: str) -> dict[str, int]:
    """The files under ``folder`` (location -> modification time in ms), without the hidden
    ones Spark's readers skip; empty when the folder is not there. One small Spark job that
    asks each file's status and opens none."""
    try:
        listing = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(absolute(folder))
            .select("path", F.unix_millis("modificationTime").alias("ms"))
            .collect()
        )
    except Exception as exc:
        if missing_path(exc):
            return {}
        raise
    return {str(r["path"]): int(r["ms"]) for r in listing}


def file_tail(spark: SparkSession, path: str, size: int) -> tuple[int, bytes]:
    """A file's length and its last ``size`` bytes (all of it when shorter), read by one task.

    The task reads the whole file (Spark's ``binaryFile`` source holds a file's content as one
    value, up to 2 GiB) and sends back only the tail.
    """
    row = (
        spark.read.format("binaryFile")
        .load(absolute(path))
        .select(
            "length",
            F.expr(f"substring(content, greatest(1, length(content) - {int(size)} + 1))"),
        )
        .first()
    )
    if row is None:
        raise FileNotFoundError(path)
    return int(row[0]), bytes(row[1])
