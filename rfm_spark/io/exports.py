"""Files the user names: one CSV or Parquet file of a result, a page, a fit; on any file system.

A single named file cannot come out of Spark's writers (they write folders of part files, on the
executors' disks) and cannot be renamed into place without the JVM's file system, which a Spark
Connect client does not have. So the process that runs the command writes it: Spark streams the
rows to it a partition at a time (``toLocalIterator``: never the whole result in memory), and
the file goes through the file system of its URI (pyarrow's): a local path (where the command
runs: the driver, or the Connect client), ``s3a://``/``s3://``, ``gs://``, ``abfss://`` or
``hdfs://``. An ``s3a://`` target takes its endpoint and keys from the session's
``spark.hadoop.fs.s3a.*`` settings where it has them, else from the environment, as the AWS
SDK does. A local file appears whole (written aside, then renamed); an object store's object
appears when its upload completes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import TransitionError, TransitionUsageError, UsageError
from rfm_spark.paths import is_uri
from rfm_spark.sqltext import exact_col

OUTPUT_SUFFIXES = (".csv", ".parquet")
_BATCH = 50_000  # rows turned into one Arrow batch or one block of CSV text
_S3 = ("s3a", "s3", "s3n")
_S3_KEYS = {
    "access_key": "access.key",
    "secret_key": "secret.key",
    "session_token": "session.token",
    "endpoint_override": "endpoint",
    "region": "endpoint.region",
}


def _setting(spark: SparkSession | None, key: str) -> str | None:
    if spark is None:
        return None
    try:
        return spark.conf.get(f"spark.hadoop.fs.s3a.{key}", None) or None
    except Exception:  # a server that does not show its settings
        return None


def file_system(uri: str, spark: SparkSession | None = None) -> tuple[pafs.FileSystem, str]:
    """The file system of ``uri`` and the path on it.

    Raises:
        UsageError: A scheme this product cannot write to.
    """
    if not is_uri(uri) or uri.startswith("file:"):
        local = uri.removeprefix("file://") if uri.startswith("file://") else uri
        local = local.removeprefix("file:")
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(local))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in _S3:
        options: dict[str, Any] = {}
        for option, key in _S3_KEYS.items():
            value = _setting(spark, key)
            if value:
                options[option] = value
        endpoint = options.get("endpoint_override")
        if endpoint and "://" in endpoint:
            found = urlsplit(endpoint)
            options["scheme"], options["endpoint_override"] = found.scheme, found.netloc
        return pafs.S3FileSystem(**options), f"{parts.netloc}{parts.path}"
    if scheme in ("abfs", "abfss"):
        container, _, account = parts.netloc.partition("@")
        azure = pafs.AzureFileSystem(account_name=account.split(".")[0])
        return azure, f"{container}{parts.path}"
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise UsageError(
            f"cannot write to {uri!r}: {exc}. Use a local path, s3a://, gs://, abfss:// or hdfs://"
        ) from None
    return fs, path


def _target(uri: str, spark: SparkSession | None) -> tuple[pafs.FileSystem, str]:
    """The file system and path of an output file, its parent folder made, not a folder."""
    fs, path = file_system(uri, spark)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        raise TransitionUsageError(f"--output {uri!r} is a folder; give a file name")
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        fs.create_dir(parent, recursive=True)
    return fs, path


def _publish(fs: pafs.FileSystem, path: str, fill: Callable[[Any], None]) -> None:
    """Write the file ``path`` with ``fill(stream)``: a local file aside, then renamed (it
    appears whole), an object as one upload (it appears when the upload completes)."""
    local = isinstance(fs, pafs.LocalFileSystem)
    tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp" if local else path
    try:
        with fs.open_output_stream(tmp) as out:
            fill(out)
        if local:
            fs.move(tmp, path)
    finally:
        if local and fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def write_text(uri: str, text: str, spark: SparkSession | None = None) -> None:
    """Write ``text`` (UTF-8) to the file ``uri``, replacing it."""
    fs, path = _target(uri, spark)
    _publish(fs, path, lambda out: out.write(text.encode("utf-8")))


def read_text(uri: str, spark: SparkSession | None = None) -> str:
    """The text of the file ``uri``.

    Raises:
        UsageError: There is no file there.
    """
    fs, path = file_system(uri, spark)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise UsageError(f"{uri!r} does not exist or is not a file")
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read()).decode("utf-8")


def _output_suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise TransitionUsageError(
            f"--output {path!r} must end with .csv or .parquet (got {suffix or 'no suffix'!r})"
        )
    return suffix


def write_result(df: DataFrame, uri: str) -> None:
    """Write ``df`` to one CSV or Parquet file, chosen by the suffix of ``uri``.

    Rows keep ``df``'s order. CSV has a header row and RFC 4180 quoting (a field is quoted when
    it holds a comma, quote or line break, or is empty text, so that empty differs from null);
    its values are Spark's own text of each value, and a map, array or struct column
    (``attribute_segments``) is its JSON text.

    Args:
        df: Any DataFrame, e.g. :func:`rfm_spark.transitions.transition_matrix`.
        uri: ``FILE.csv`` or ``FILE.parquet``, a local path or a URI (parent folders made).

    Raises:
        TransitionUsageError: Another suffix, or ``uri`` is a folder.
        TransitionError: Writing failed.
    """
    suffix = _output_suffix(uri)
    spark = df.sparkSession
    fs, path = _target(uri, spark)
    try:
        if suffix == ".csv":
            _publish(fs, path, lambda out: _write_all(out, _csv_chunks(df)))
        else:
            _write_parquet(df, fs, path)
    except OSError as exc:
        raise TransitionError(f"writing {uri!r} failed: {exc}") from None


def _write_all(out: Any, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_chunks(df: DataFrame) -> Iterator[bytes]:
    """The CSV text of ``df`` in blocks of rows: its header, then each row's fields as Spark
    casts them to text (nested columns as JSON)."""
    nested = (T.MapType, T.ArrayType, T.StructType)
    text = df.select(
        *[
            (F.to_json(exact_col(f.name)) if isinstance(f.dataType, nested) else exact_col(f.name))
            .cast("string")
            .alias(f.name)
            for f in df.schema.fields
        ]
    )
    yield (",".join(_csv_field(c) for c in df.columns) + "\n").encode("utf-8")
    for rows in _batches(text.toLocalIterator()):
        lines = (",".join(_csv_field(v) for v in row) for row in rows)
        yield ("\n".join(lines) + "\n").encode("utf-8")


def _write_parquet(df: DataFrame, fs: pafs.FileSystem, path: str) -> None:
    """``df`` as one Parquet file; timestamps travel as UTC microseconds (a Row's datetime is
    in the local zone of the process) and become UTC timestamps again in the file."""
    from pyspark.sql.pandas.types import to_arrow_schema

    stamps = [f.name for f in df.schema.fields if isinstance(f.dataType, T.TimestampType)]
    frame = df.select(
        *[F.unix_micros(exact_col(c)).alias(c) if c in stamps else exact_col(c) for c in df.columns]
    )
    carried = to_arrow_schema(frame.schema)
    final = pa.schema(
        [pa.field(f.name, pa.timestamp("us", tz="UTC")) if f.name in stamps else f for f in carried]
    )

    def fill(out: Any) -> None:
        with pq.ParquetWriter(out, final) as writer:
            for rows in _batches(frame.toLocalIterator()):
                batch = pa.RecordBatch.from_pylist(
                    [r.asDict(recursive=True) for r in rows], carried
                )
                writer.write_batch(batch.cast(final))

    _publish(fs, path, fill)


def _batches(rows: Iterable[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
