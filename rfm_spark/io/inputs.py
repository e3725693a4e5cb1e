"""Read transactions from Parquet, CSV, Delta or a metastore table into the canonical schema.

Canonical columns: ``customer_id`` (string), ``order_id`` (string, null when the input has no
order id), ``order_ts`` (timestamp), ``amount`` (decimal(18,2)), with the reason a row cannot be
used (:mod:`rfm_spark.validation`). Structural problems (missing path or columns, unusable
column types) fail here, before any Spark job runs.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from rfm_spark.config import InputSettings
from rfm_spark.errors import DataError, InputError, MissingColumnsError, java_error_line
from rfm_spark.io.files import file_tail, missing_path
from rfm_spark.sqltext import quote
from rfm_spark.validation import validate

# what a Delta change feed adds to each row: insert, update_preimage, update_postimage or
# delete; the commit that made the change; its time
CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# the bytes read from a Parquet file's end to find its footer (read again when it is longer)
_FOOTER_GUESS = 1 << 20


def _load(
    spark: SparkSession, settings: InputSettings, *, raw: bool = False, version: int | None = None
) -> DataFrame:
    """The input as read (``raw``: Parquet's nanosecond timestamps left as long numbers;
    ``version``: a Delta input as of that commit)."""
    path = settings.path
    if not path:
        raise InputError("no input given; pass --input PATH (or set input.path in the config)")
    try:
        if settings.format == "parquet":
            files = _resolved(spark.read.parquet(path))
            return files if raw else nanos_as_timestamps(files)
        if settings.format == "delta":
            reader = spark.read.format("delta")
            if version is not None:
                reader = reader.option("versionAsOf", version)
            return _resolved(reader.load(path))
        if settings.format == "table":
            reader = spark.read if version is None else spark.read.option("versionAsOf", version)
            return _resolved(reader.table(path))
        # CSV: every column is read as text (no inferSchema pass) and typed explicitly below.
        return _resolved(_csv_options(spark.read, settings).csv(path))
    except AnalysisException as exc:
        if missing_path(exc) or "DELTA_TABLE_NOT_FOUND" in str(exc):
            raise InputError(
                f"input path {path!r} does not exist; check --input "
                f"(or holds no {settings.format} data; run 'rfm-spark generate' for demo data)"
            ) from None
        first = java_error_line(exc) or type(exc).__name__
        raise InputError(f"cannot read {settings.format} input {path!r}: {first}") from None
    except Exception as exc:  # unreadable files surface here (Py4J errors carry the cause)
        raise DataError(
            f"cannot read {settings.format} input {path!r}: "
            f"{(java_error_line(exc) or type(exc).__name__).rstrip('.')}. Fix: replace or remove the "
            "unreadable file(s)"
        ) from exc


def _resolved(df: DataFrame) -> DataFrame:
    """``df`` once Spark has resolved its source: a missing path fails here, also on a Spark
    Connect session, which resolves a read only when its schema is asked for."""
    _ = df.schema
    return df


def _csv_options(reader: Any, settings: InputSettings) -> Any:
    """A batch or stream reader set up for the configured CSV: text columns, no inference."""
    return (
        reader.option("header", str(settings.csv.header).lower())
        .option("sep", settings.csv.delimiter)
        .option("inferSchema", "false")
        .option("mode", "PERMISSIVE")
    )


def _nanosecond_columns(df: DataFrame) -> list[str]:
    """Top-level columns a Parquet file stores as TIMESTAMP(NANOS): Spark reads them as long
    nanoseconds (``spark.sql.legacy.parquet.nanosAsLong``, set by the session) and its schema
    does not tell, so the first file's footer is asked."""
    longs = [f.name for f in df.schema.fields if isinstance(f.dataType, T.LongType)]
    files = df.inputFiles() if longs else []
    if not files:
        return []
    schema = parquet_schema(df.sparkSession, sorted(files)[0])
    return [
        name
        for name in longs
        if name in schema.names
        and pa.types.is_timestamp(schema.field(name).type)
        and schema.field(name).type.unit == "ns"
    ]


def parquet_schema(spark: SparkSession, path: str) -> pa.Schema:
    """The Arrow schema in a Parquet file's footer, read through Spark (any file system, a
    Spark Connect session too): the file's tail holds the footer, its length and ``PAR1``."""
    length, tail = file_tail(spark, path, _FOOTER_GUESS)
    size = int.from_bytes(tail[-8:-4], "little") + 8 if len(tail) >= 8 else 0
    if size > len(tail) and size <= length:
        length, tail = file_tail(spark, path, size)
    if tail[-4:] != b"PAR1" or size > len(tail):
        raise DataError(f"{path} is not a Parquet file (no footer); remove or replace it")
    return pq.read_schema(io.BytesIO(tail[-size:]))


def nanos_as_timestamps(df: DataFrame) -> DataFrame:
    """Parquet written with nanosecond timestamps (pandas' and pyarrow's default) read as
    timestamps, truncated to the microseconds Spark keeps; Spark 4 alone refuses such files
    (``PARQUET_TYPE_ILLEGAL``)."""
    return _micros(df, _nanosecond_columns(df))


def _micros(df: DataFrame, names: list[str]) -> DataFrame:
    for name in names:
        df = df.withColumn(name, F.timestamp_micros(F.expr(f"{quote(name)} div 1000")))
    return df


_TEXT_OR_NUMBER = (T.StringType, T.NumericType)
_ACCEPTED = {
    "customer_id": (T.StringType, T.IntegralType, T.DecimalType),
    "order_ts": (T.StringType, T.TimestampType, T.TimestampNTZType, T.DateType),
    "amount": _TEXT_OR_NUMBER,
    "order_id": (T.StringType, T.NumericType),
    "returns": (T.StringType, T.NumericType, T.BooleanType),
}
_EXPECTED = {
    "customer_id": "a string or whole-number id",
    "order_ts": "a timestamp, a date or text",
    "amount": "a number or text",
    "order_id": "a string or number",
    "returns": "a number or text",
}


def _check_types(df: DataFrame, wanted: dict[str, str], where: str) -> None:
    """Fail before any job runs when a mapped column has a type that cannot be used."""
    types = {f.name: f.dataType for f in df.schema.fields}
    for canon, src in wanted.items():
        dtype = types[src]
        ok = isinstance(dtype, _ACCEPTED[canon])
        if canon == "customer_id" and isinstance(dtype, T.DecimalType):
            ok = dtype.scale == 0
        if ok:
            continue
        raise InputError(
            f"{where} column {src!r} ({canon}) has type {dtype.simpleString()}; expected "
            f"{_EXPECTED[canon]}. Fix: map another column under 'input.columns' or convert it"
        )


def read_input(
    spark: SparkSession, settings: InputSettings, *, version: int | None = None
) -> DataFrame:
    """The input as read (a Delta input as of ``version``), after checking that the mapped
    columns exist and have usable types.

    Fails before any data is processed, naming the missing and the present columns.
    """
    return _checked(_load(spark, settings, version=version), settings)


def _checked(df: DataFrame, settings: InputSettings) -> DataFrame:
    """``df`` after checking that the mapped columns exist and have usable types."""
    cols = settings.columns
    wanted = {"customer_id": cols.customer_id, "order_ts": cols.order_ts, "amount": cols.amount}
    if cols.order_id:
        wanted["order_id"] = cols.order_id
    if settings.returns.column:
        wanted["returns"] = settings.returns.column
    present = df.columns
    missing = [f"{src} (for {canon})" for canon, src in wanted.items() if src not in present]
    if missing:
        raise MissingColumnsError(
            f"input {settings.path!r}",
            missing,
            present,
            hint="Map your column names under 'input.columns' (and 'input.returns.column').",
        )
    _check_types(df, wanted, f"input {settings.path!r}")
    return df


def read_transactions(
    spark: SparkSession,
    settings: InputSettings,
    *,
    now: dt.datetime | None = None,
    version: int | None = None,
) -> DataFrame:
    """Read and validate the transactions (see :func:`rfm_spark.validation.validate`).

    Args:
        now: the moment the run started; timestamps after it are quarantined (default: now).
        version: a Delta input as of this commit (the latest when None).

    Returns:
        ``customer_id``, ``order_id``, ``order_ts``, ``amount``, ``order_date``,
        ``reject_reason`` (null for a usable row) and ``_row`` (the original columns).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    return validate(read_input(spark, settings, version=version), settings, now=now)


def stream_transactions(
    spark: SparkSession,
    settings: InputSettings,
    *,
    now: dt.datetime,
    changes: bool = False,
    files_per_batch: int | None = None,
) -> DataFrame:
    """The input as a stream of the rows not read before, validated like
    :func:`read_transactions`.

    Structured Streaming finds the new rows: new files of a Parquet or CSV folder, new commits
    of a Delta table or a metastore table (its checkpoint, kept by the caller, remembers what
    was read). With ``changes`` (a Delta input whose change data feed is on, see
    :func:`change_feed_on`) it is read as its changes: every row then carries
    :data:`CHANGE_COLUMNS` (insert, update images, delete; the commit), beside the row itself.
    The path, columns and types are checked on a batch read first, so a bad input fails as
    clearly as in a full run. ``files_per_batch`` caps the files of one micro-batch (the
    source's ``maxFilesPerTrigger``); a change data feed is always read in whole commits.

    Raises:
        InputError: A Delta input without the Delta connector (use a full run).
    """
    path, fmt = str(settings.path), settings.format
    batch = _load(spark, settings, raw=True)  # one listing and schema read serves both
    nanos = _nanosecond_columns(batch) if fmt == "parquet" else []
    _checked(_micros(batch, nanos), settings)
    try:
        if fmt in ("parquet", "csv"):
            # a file delivered late keeps its old modification time: never skip it for its age
            files = _capped(spark, files_per_batch).option("maxFileAge", "36500d")
            files = files.schema(batch.schema)
            if fmt == "parquet":
                stream = _micros(files.parquet(path), nanos)
            else:
                stream = _csv_options(files, settings).csv(path)
        elif fmt == "table":
            stream = _changes(_capped(spark, files_per_batch), changes).table(path)
        else:
            reader = _capped(spark, files_per_batch).format("delta")
            stream = _changes(reader, changes).load(path)
    except AnalysisException as exc:
        first = java_error_line(exc) or type(exc).__name__
        raise InputError(f"cannot stream {fmt} input {path!r}: {first}") from None
    beside = tuple(c for c in CHANGE_COLUMNS if c in stream.columns)
    return validate(stream, settings, now=now, beside=beside)


def _capped(spark: SparkSession, files_per_batch: int | None) -> Any:
    """A stream reader whose micro-batches read at most ``files_per_batch`` new files (the
    source's own default without it: all new files of a folder, 1000 of a Delta table)."""
    reader = spark.readStream
    return (
        reader if files_per_batch is None else reader.option("maxFilesPerTrigger", files_per_batch)
    )


def _changes(reader: Any, changes: bool) -> Any:
    """``reader`` reading the input's change data feed when ``changes``. A micro-batch then
    always holds whole commits (no file limit per batch): a batch that ended inside a commit
    would recompute days from a version whose other rows come again later."""
    if not changes:
        return reader
    return reader.option("readChangeFeed", "true").option("maxFilesPerTrigger", 2**31 - 1)


def change_feed_on(spark: SparkSession, settings: InputSettings) -> bool:
    """Whether the input is a Delta table that records its changes
    (``delta.enableChangeDataFeed``): a Delta path, or a metastore table stored as Delta."""
    if settings.format not in ("delta", "table"):
        return False
    target = (
        str(settings.path) if settings.format == "table" else f"delta.{quote(str(settings.path))}"
    )
    try:
        detail = spark.sql(f"DESCRIBE DETAIL {target}").first()
    except AnalysisException:  # not a Delta table
        return False
    properties = (detail["properties"] if detail is not None else None) or {}
    return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"


def read_customer_attributes(
    spark: SparkSession,
    settings: InputSettings,
    columns: list[str],
    *,
    needed_for: str = "scoring.partition_by",
) -> DataFrame:
    """Read ``customer_id`` and ``columns`` (e.g. ``country``) from the customers table.

    Raises:
        InputError: no customers table is configured, or it lacks a column.
    """
    if not settings.customers_path:
        raise InputError(
            f"{needed_for} needs customer columns {columns}; set input.customers_path "
            "(--customers-input) to a customers table with customer_id and those columns"
        )
    df = _load(spark, settings.model_copy(update={"path": settings.customers_path}))
    missing = [c for c in ["customer_id", *columns] if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"customers table {settings.customers_path!r}", missing, df.columns
        )
    return df.select(
        F.trim(F.col("customer_id").cast("string")).alias("customer_id"),
        *[F.col(quote(c)).alias(c) for c in columns],
    ).dropDuplicates(["customer_id"])


def read_products(spark: SparkSession, settings: InputSettings) -> DataFrame | None:
    """``product_id`` and ``category`` of the products table (None when none is configured).

    Raises:
        InputError: The table lacks one of the two columns.
    """
    if not settings.products_path:
        return None
    df = _load(spark, settings.model_copy(update={"path": settings.products_path}))
    missing = [c for c in ("product_id", "category") if c not in df.columns]
    if missing:
        raise MissingColumnsError(f"products table {settings.products_path!r}", missing, df.columns)
    return df.select(
        F.col("product_id").cast("string").alias("product_id"),
        F.col("category").cast("string").alias("category"),
    ).dropDuplicates(["product_id"])
