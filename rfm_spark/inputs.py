"""Read transactions from Parquet, CSV, Delta or a metastore table into the canonical schema.

Canonical columns: ``customer_id`` (string), ``order_id`` (string, null when the input has no
order id), ``order_ts`` (timestamp), ``amount`` (decimal(18,2)). Other input columns are dropped
early so that Parquet and Delta readers prune them.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from rfm_spark.config import InputSettings
from rfm_spark.errors import InputError, MissingColumnsError

AMOUNT_TYPE = T.DecimalType(18, 2)
CANONICAL = ("customer_id", "order_id", "order_ts", "amount")


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def _load(spark: SparkSession, settings: InputSettings) -> DataFrame:
    path = settings.path
    if not path:
        raise InputError("no input given; pass --input PATH (or set input.path in the config)")
    if settings.format != "table" and _is_local(path):
        local = Path(path.removeprefix("file://").removeprefix("file:"))
        if not local.exists():
            raise InputError(
                f"input path {path!r} does not exist; check --input (run 'rfm-spark generate' "
                "for demo data)"
            )
    try:
        if settings.format == "parquet":
            return spark.read.parquet(path)
        if settings.format == "delta":
            from rfm_spark.io.delta import open_store

            return open_store(spark, "auto").read(path)
        if settings.format == "table":
            return spark.table(path)
        # CSV: every column is read as text (no inferSchema pass) and typed explicitly below.
        return (
            spark.read.option("header", str(settings.csv.header).lower())
            .option("sep", settings.csv.delimiter)
            .option("inferSchema", "false")
            .option("mode", "PERMISSIVE")
            .csv(path)
        )
    except AnalysisException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {settings.format} input {path!r}: {first}") from None


def _timestamp(col: str, dtype: T.DataType, fmt: str | None) -> F.Column:
    if isinstance(dtype, T.TimestampType):
        return F.col(col)
    if isinstance(dtype, (T.TimestampNTZType, T.DateType)):
        return F.col(col).cast(T.TimestampType())
    if fmt:
        return F.try_to_timestamp(F.col(col).cast("string"), F.lit(fmt))
    return F.try_to_timestamp(F.col(col).cast("string"))


def read_transactions(spark: SparkSession, settings: InputSettings) -> DataFrame:
    """Read the transactions and map them onto the canonical columns.

    Fails before any data is processed when a mapped column is missing, naming the missing and
    the present columns. Values that cannot be parsed become null here; validation counts them.

    Returns:
        DataFrame with ``customer_id``, ``order_id``, ``order_ts``, ``amount``.
    """
    df = _load(spark, settings)
    cols = settings.columns
    wanted = {"customer_id": cols.customer_id, "order_ts": cols.order_ts, "amount": cols.amount}
    if cols.order_id:
        wanted["order_id"] = cols.order_id
    present = df.columns
    missing = [f"{src} (for {canon})" for canon, src in wanted.items() if src not in present]
    if missing:
        raise MissingColumnsError(
            f"input {settings.path!r}",
            missing,
            present,
            hint="Map your column names under 'input.columns' in the config.",
        )
    types = dict(df.dtypes)
    schema = {f.name: f.dataType for f in df.schema.fields}
    if types[cols.customer_id] not in ("string", "int", "bigint", "smallint", "tinyint") and not (
        types[cols.customer_id].startswith("decimal") and schema[cols.customer_id].scale == 0  # type: ignore[attr-defined]
    ):
        raise InputError(
            f"input column {cols.customer_id!r} (customer_id) has type {types[cols.customer_id]}; "
            "expected a string or integer id"
        )
    order_id = F.col(cols.order_id).cast("string") if cols.order_id else F.lit(None).cast("string")
    return df.select(
        F.trim(F.col(cols.customer_id).cast("string")).alias("customer_id"),
        order_id.alias("order_id"),
        _timestamp(cols.order_ts, schema[cols.order_ts], settings.csv.timestamp_format).alias(
            "order_ts"
        ),
        F.col(cols.amount).try_cast(AMOUNT_TYPE).alias("amount"),
    )


def read_customer_attributes(
    spark: SparkSession, settings: InputSettings, columns: list[str]
) -> DataFrame:
    """Read ``customer_id`` and ``columns`` (e.g. ``country``) from the customers table.

    Raises:
        InputError: no customers table is configured, or it lacks a column.
    """
    if not settings.customers_path:
        raise InputError(
            f"scoring.partition_by {columns} needs customer attributes; set input.customers_path "
            "to a customers table with customer_id and those columns"
        )
    df = _load(spark, settings.model_copy(update={"path": settings.customers_path}))
    missing = [c for c in ["customer_id", *columns] if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"customers table {settings.customers_path!r}", missing, df.columns
        )
    return df.select(
        F.trim(F.col("customer_id").cast("string")).alias("customer_id"), *columns
    ).dropDuplicates(["customer_id"])
