"""Row validation, exact duplicates and the quarantine table.

Every input row ends in exactly one place, and the run's reconciliation says how many went where:

    input rows = used + outside the window + quarantined (by reason)

A row is quarantined with the first reason of :data:`REASONS` that applies; ``duplicate_row``
is given to the extra copies of a row that is otherwise valid and inside the window (the first
copy is used). A row later than the snapshot is normal in a backfill and simply falls outside
the window; a row later than the moment the run started cannot be a real transaction and is
quarantined. The quarantine keeps the original row as JSON text with its reason, so a bad
delivery can be found and fixed at its source.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.config import InputSettings
from rfm_spark.session import sort_aggregation
from rfm_spark.sqltext import quote

# In order of precedence: a row gets the first reason that applies.
REASONS = (
    "null_customer_id",  # null, empty or blank customer id
    "bad_customer_id",  # not a whole number while input.customer_id_type is integer
    "null_timestamp",  # no timestamp
    "bad_timestamp",  # a timestamp that does not parse
    "future_timestamp",  # later than the moment the run started
    "null_amount",  # no amount
    "bad_amount",  # unparsable, NaN or infinite, or beyond decimal(18,2)
    "negative_not_return",  # negative amount on a row the input does not mark as a return
)
DUPLICATE = "duplicate_row"  # an extra copy of a valid row in the window (every column equal)
ALL_REASONS = (*REASONS, DUPLICATE)

AMOUNT_TYPE = T.DecimalType(18, 2)
ROW = "_row"  # struct of the original input columns
COPIES = "_copies"  # copies of a row (exact-duplicate handling)


_INTEGER_TEXT = r"^[+-]?[0-9]+$"


def _blank(col: Column, dtype: T.DataType) -> Column:
    """Null, or empty or blank text (only text can be blank: other types are not turned into
    text per row just to test that)."""
    if isinstance(dtype, T.StringType):
        return col.isNull() | (F.trim(col) == "")
    return col.isNull()


def _customer_id(raw: Column, dtype: T.DataType, id_type: str) -> tuple[Column, Column]:
    """(canonical id text, is it bad) for a raw customer id column."""
    if isinstance(dtype, (T.IntegralType, T.DecimalType)):
        return raw.cast("decimal(38,0)").cast("string"), F.lit(False)
    text = F.trim(raw.cast("string"))
    if id_type == "string":
        return text, F.lit(False)
    whole = text.rlike(_INTEGER_TEXT)
    return F.when(whole, text.cast("decimal(38,0)").cast("string")), ~whole


def _timestamp(raw: Column, dtype: T.DataType, fmt: str | None) -> Column:
    if isinstance(dtype, T.TimestampType):
        return raw
    if isinstance(dtype, (T.TimestampNTZType, T.DateType)):
        return raw.cast("timestamp")
    text = F.trim(raw.cast("string"))
    return F.try_to_timestamp(text, F.lit(fmt)) if fmt else F.try_to_timestamp(text)


def _amount(raw: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        finite = ~F.isnan(raw) & (F.abs(raw) != F.lit(float("inf")))
        return F.when(finite, raw.try_cast(AMOUNT_TYPE))
    if isinstance(dtype, T.StringType):
        return F.trim(raw).try_cast(AMOUNT_TYPE)
    return raw.try_cast(AMOUNT_TYPE)


def _is_return(settings: InputSettings) -> Column:
    marker = settings.returns
    if marker.column is None:
        return F.lit(True)
    col = F.col(quote(marker.column))
    if marker.values:
        wanted = [v.strip().lower() for v in marker.values]
        return F.coalesce(F.lower(F.trim(col.cast("string"))).isin(wanted), F.lit(False))
    return F.coalesce(col.try_cast("double") < 0, F.lit(False))


def validate(
    raw: DataFrame, settings: InputSettings, *, now: dt.datetime, beside: tuple[str, ...] = ()
) -> DataFrame:
    """Canonical columns, the reason a row cannot be used, and the original row.

    Args:
        raw: the input as read, with the mapped columns present.
        settings: the input settings (column mapping, id type, return marker, CSV format).
        now: the moment the run started (aware); later timestamps are quarantined.
        beside: columns of ``raw`` that are not the row's own (a change feed's change type
            and version): kept as they are after the others, not in ``_row``.

    Returns:
        ``customer_id`` (string), ``order_id`` (string or null), ``order_ts`` (timestamp),
        ``amount`` (decimal(18,2)), ``order_date`` (date in the session time zone),
        ``reject_reason`` (one of :data:`REASONS`, null for a usable row) and ``_row`` (struct
        of every input column as read), then the ``beside`` columns.
    """
    cols = settings.columns
    types = {f.name: f.dataType for f in raw.schema.fields}
    cid_raw, ts_raw, amt_raw = (
        F.col(quote(c)) for c in (cols.customer_id, cols.order_ts, cols.amount)
    )
    customer_id, bad_id = _customer_id(cid_raw, types[cols.customer_id], settings.customer_id_type)
    order_ts = _timestamp(ts_raw, types[cols.order_ts], settings.csv.timestamp_format)
    amount = _amount(amt_raw, types[cols.amount])
    order_id = F.col(quote(cols.order_id)).cast("string") if cols.order_id else F.lit(None)
    reason = (
        F.when(_blank(cid_raw, types[cols.customer_id]), F.lit("null_customer_id"))
        .when(bad_id, F.lit("bad_customer_id"))
        .when(_blank(ts_raw, types[cols.order_ts]), F.lit("null_timestamp"))
        .when(order_ts.isNull(), F.lit("bad_timestamp"))
        .when(order_ts > F.lit(now.astimezone(dt.timezone.utc)), F.lit("future_timestamp"))
        .when(_blank(amt_raw, types[cols.amount]), F.lit("null_amount"))
        .when(amount.isNull(), F.lit("bad_amount"))
        .when((amount < 0) & ~_is_return(settings), F.lit("negative_not_return"))
    )
    return raw.select(
        customer_id.alias("customer_id"),
        order_id.cast("string").alias("order_id"),
        order_ts.alias("order_ts"),
        amount.alias("amount"),
        F.to_date(order_ts).alias("order_date"),
        reason.alias("reject_reason"),
        F.struct(*[F.col(quote(c)) for c in raw.columns if c not in beside]).alias(ROW),
        *[F.col(quote(c)) for c in beside],
    )


def _is_valid() -> Column:
    return F.col("reject_reason").isNull()


def _in_window(start: dt.date, end: dt.date) -> Column:
    day = F.col("order_date")
    return (day >= F.lit(start)) & (day < F.lit(end))


def observe_rows(
    validated: DataFrame, *, start: dt.date, end: dt.date
) -> tuple[DataFrame, Observation]:
    """Attach the row counts of the reconciliation (filled by the first action) and keep the
    valid rows with ``start <= order_date < end``.

    Returns:
        The kept rows (``reject_reason`` dropped, ``_row`` kept) and the observation with
        ``input_rows``, ``in_window``, ``before_window``, ``after_snapshot`` and one
        ``quarantined_<reason>`` per reason of :data:`REASONS`.
    """
    obs = Observation("reconciliation")
    valid, day = _is_valid(), F.col("order_date")
    observed = validated.observe(
        obs,
        F.count(F.lit(1)).alias("input_rows"),
        F.count(F.when(valid & _in_window(start, end), 1)).alias("in_window"),
        F.count(F.when(valid & (day < F.lit(start)), 1)).alias("before_window"),
        F.count(F.when(valid & (day >= F.lit(end)), 1)).alias("after_snapshot"),
        *[
            F.count(F.when(F.col("reject_reason") == r, 1)).alias(f"quarantined_{r}")
            for r in REASONS
        ],
    )
    return observed.filter(valid & _in_window(start, end)).drop("reject_reason"), obs


def _row_key(df: DataFrame) -> Column:
    """The original row as a grouping key (maps cannot be grouped: their JSON text is used)."""
    if "map<" in df.schema[ROW].dataType.simpleString():
        return F.to_json(F.col(ROW))
    return F.col(ROW)


def row_fingerprint(df: DataFrame) -> list[Column]:
    """Two hashes of the original row's fields (xxhash64 and murmur3: 96 bits), which also see
    which fields are null (Spark's hashes skip nulls, so ``(null, 1)`` and ``(1, null)`` would
    hash alike). Plain fields are hashed as they are, nested ones (structs, arrays, maps) as
    their JSON text; no struct or array is built per row for the flat fields."""
    row_type = df.schema[ROW].dataType
    assert isinstance(row_type, T.StructType)
    values, masks = [], []
    for i, f in enumerate(row_type.fields):
        value = F.col(ROW).getField(f.name)
        nested = isinstance(f.dataType, (T.StructType, T.ArrayType, T.MapType))
        # nested values as JSON text: the hashes skip nulls inside arrays and structs too, and
        # maps cannot be hashed at all
        values.append(F.to_json(value) if nested else value)
        bit = F.when(value.isNull(), F.lit(1 << (i % 62))).otherwise(F.lit(0))
        if i % 62 == 0:
            masks.append(bit)
        else:
            masks[-1] = masks[-1] + bit
    key = [*values, *masks]
    return [F.xxhash64(*key).alias("_h1"), F.hash(*key).alias("_h2")]


def deduplicate(rows: DataFrame) -> tuple[DataFrame, Observation]:
    """One row per distinct input row, with ``_copies``; the extra copies are observed.

    Rows are equal when their fingerprints (:func:`row_fingerprint`) are, within one customer
    and day: only the canonical columns the features need and the 96-bit fingerprint are
    shuffled, not the whole original row. Two different rows of one customer on one day share
    a fingerprint with a probability of about 2^-96 per pair, so at a billion rows the chance
    that any usable row is wrongly taken for a copy is far below 10^-12. The quarantine
    (:func:`quarantine_rows`) compares whole rows.

    The rows are shuffled once by customer: the grouping by fingerprint, the daily aggregates
    and the per-customer features that follow all group by keys that start with the customer,
    so they reuse that partitioning and the whole feature computation has one shuffle. When
    the session allows it (``spark.sql.execution.replaceHashWithSortAgg``, on in sessions made
    by :func:`rfm_spark.session.build_spark`), each partition is sorted by the grouping key
    and the grouping runs as one streaming sort aggregate instead of a partial and a final
    hash aggregate over rows that are nearly all distinct; its output stays sorted by
    customer, day and order id, so the levels after it can stream too
    (:func:`rfm_spark.features.daily_aggregates` with ``ordered``).

    Returns:
        The distinct rows (``customer_id``, ``order_id``, ``amount``, ``order_date``,
        ``_copies``) and an observation with ``duplicates`` (extra copies).
    """
    obs = Observation("duplicates")
    key = ["customer_id", "order_date", "order_id", "_h1", "_h2"]
    shuffled = rows.select(
        "customer_id", "order_id", "amount", "order_date", *row_fingerprint(rows)
    ).repartition("customer_id")
    if sort_aggregation(rows.sparkSession):
        shuffled = shuffled.sortWithinPartitions(*key)
    distinct = (
        shuffled.groupBy(*key)
        .agg(F.first("amount").alias("amount"), F.count(F.lit(1)).alias(COPIES))
        .drop("_h1", "_h2")
    )
    return distinct.observe(obs, F.sum(F.col(COPIES) - 1).alias("duplicates")), obs


def by_customer(rows: DataFrame) -> DataFrame:
    """The canonical columns of ``rows``, shuffled once by customer (``validation.duplicates:
    keep``): the daily aggregates and features reuse the partitioning, as after
    :func:`deduplicate`."""
    return rows.select("customer_id", "order_id", "order_ts", "amount", "order_date").repartition(
        "customer_id"
    )


def quarantine_rows(
    validated: DataFrame,
    *,
    window: tuple[dt.date, dt.date],
    duplicates: bool,
    snapshot_date: dt.date,
    run_id: str,
    source: str,
    now: dt.datetime,
) -> DataFrame:
    """The rows of the ``quarantine`` table for one run (:data:`QUARANTINE_SCHEMA`).

    Args:
        validated: the output of :func:`validate`.
        window: ``(start, end)``: the days whose duplicates are quarantined (the rows used).
        duplicates: whether extra copies of valid rows are quarantined (``validation.duplicates``).
        snapshot_date: the partition the rows are written to.
        run_id, source, now: recorded with every row.
    """
    bad = validated.filter(~_is_valid()).select(F.col("reject_reason").alias("reason"), ROW)
    if duplicates:
        in_window = validated.filter(_is_valid() & _in_window(*window))
        extra = (
            in_window.groupBy(_row_key(in_window).alias("_key"))
            .agg(F.first(ROW).alias(ROW), F.count(F.lit(1)).alias(COPIES))
            .filter(F.col(COPIES) > 1)
            .select(
                F.lit(DUPLICATE).alias("reason"),
                ROW,
                F.explode(F.sequence(F.lit(2), F.col(COPIES))).alias("_copy"),
            )
            .drop("_copy")
        )
        bad = bad.unionByName(extra)
    return as_quarantine(bad, snapshot_date=snapshot_date, run_id=run_id, source=source, now=now)


def as_quarantine(
    bad: DataFrame, *, snapshot_date: dt.date, run_id: str, source: str, now: dt.datetime
) -> DataFrame:
    """Rows with a ``reason`` and the original ``_row`` as rows of the ``quarantine`` table."""
    return bad.select(
        F.lit(snapshot_date).alias("snapshot_date"),
        F.lit(run_id).alias("run_id"),
        F.col("reason"),
        F.to_json(F.col(ROW)).alias("row"),
        F.lit(source).alias("source"),
        F.lit(now.astimezone(dt.timezone.utc)).cast("timestamp").alias("quarantined_at"),
    )
