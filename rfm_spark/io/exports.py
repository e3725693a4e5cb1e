"""File exports: one CSV or Parquet file from a DataFrame, written by Spark, moved into place."""

from __future__ import annotations

import os
import shutil
import uuid

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import TransitionError, TransitionUsageError
from rfm_spark.sqltext import exact_col

OUTPUT_SUFFIXES = (".csv", ".parquet")


def _output_suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise TransitionUsageError(
            f"--output {path!r} must end with .csv or .parquet (got {suffix or 'no suffix'!r})"
        )
    return suffix


def write_result(df: DataFrame, path: str) -> None:
    """Write ``df`` to one local CSV or Parquet file, chosen by the suffix of ``path``.

    Spark writes one part file (``coalesce(1)``, rows in ``df``'s order, nothing collected on
    the driver) into a temporary folder next to the target; that file is then moved into place
    (replacing an existing file). CSV has a header row and RFC 4180 quoting (quotes doubled);
    a map, array or struct column (``attribute_segments``) becomes its JSON text there.

    Args:
        df: Any DataFrame, e.g. :func:`rfm_spark.transitions.transition_matrix` or
            :func:`rfm_spark.transitions.movers`.
        path: ``FILE.csv`` or ``FILE.parquet`` (a local path; parent folders are created).

    Raises:
        TransitionUsageError: Another suffix, or ``path`` is a folder.
        TransitionError: Spark wrote no single part file.
    """
    suffix = _output_suffix(path)
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(target):
        raise TransitionUsageError(f"--output {path!r} is a folder; give a file name")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(target)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        frame = _flat(df) if suffix == ".csv" else df
        writer = frame.coalesce(1).write.mode("overwrite")
        uri = "file://" + tmp
        if suffix == ".csv":
            writer.option("header", True).option("quote", '"').option("escape", '"').csv(uri)
        else:
            writer.parquet(uri)
        parts = sorted(
            f for f in os.listdir(tmp) if f.startswith("part-") and not f.endswith(".crc")
        )
        if len(parts) != 1:
            raise TransitionError(
                f"writing {path!r}: expected one part file from Spark, found {len(parts)} in {tmp}"
            )
        os.replace(os.path.join(tmp, parts[0]), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _flat(df: DataFrame) -> DataFrame:
    """``df`` with its nested columns as JSON text, which CSV can hold."""
    nested = (T.MapType, T.ArrayType, T.StructType)
    return df.select(
        *[
            F.to_json(exact_col(f.name)).alias(f.name)
            if isinstance(f.dataType, nested)
            else exact_col(f.name)
            for f in df.schema.fields
        ]
    )


def write_text(path: str, text: str) -> None:
    """Write ``text`` to a local file (parent folders created), replacing it atomically."""
    target = os.path.abspath(os.path.expanduser(path))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{uuid.uuid4().hex[:12]}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, target)
