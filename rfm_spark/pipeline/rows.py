"""The input rows of a run: read, validated, counted and turned into features.

Every input row is counted on the way in (without an extra pass over the input), so that a
run can say where each one went and refuse an empty input before it commits anything.
"""

from __future__ import annotations

import datetime as dt

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession

from rfm_spark.config import Config
from rfm_spark.errors import DataError, InputError
from rfm_spark.features import daily_aggregates, rfm_features
from rfm_spark.io.inputs import read_customer_attributes, read_transactions
from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.session import sort_aggregation
from rfm_spark.validation import DUPLICATE, REASONS, by_customer, deduplicate, observe_rows


def valid_rows(
    spark: SparkSession, config: Config, *, start: dt.date, end: dt.date, now: dt.datetime
) -> tuple[DataFrame, DataFrame, Observation, Observation | None]:
    """Read and validate the input, keeping the valid rows of the window ``[start, end)``.

    Args:
        spark: The session.
        config: The run's configuration (its input and its duplicate policy).
        start: The first day of the window.
        end: The day after the window (the snapshot).
        now: The run's start, which decides which timestamps lie in the future.

    Returns:
        (validated input, valid rows of the window ready for daily aggregates, row counts,
        duplicate counts or None when duplicates are kept). The counts are filled by the
        first action on the rows.
    """
    validated = read_transactions(spark, config.input, now=now)
    kept, obs = observe_rows(validated, start=start, end=end)
    if config.validation.duplicates == "keep":
        return validated, by_customer(kept), obs, None
    distinct, dups = deduplicate(kept)
    return validated, distinct, obs, dups


def reconciliation(obs: Observation, dups: int) -> Reconciliation:
    """Where the input rows went, from the observed counts (read after the first action).

    Args:
        obs: The row counts of :func:`valid_rows`.
        dups: The extra copies of rows in the window (quarantined as duplicates).
    """
    m = obs.get
    quarantined = {r: int(m[f"quarantined_{r}"]) for r in REASONS if int(m[f"quarantined_{r}"])}
    if dups:
        quarantined[DUPLICATE] = dups
    return Reconciliation(
        input_rows=int(m["input_rows"]),
        used=int(m["in_window"]) - dups,
        before_window=int(m["before_window"]),
        after_snapshot=int(m["after_snapshot"]),
        quarantined=quarantined,
    )


def check_not_empty(config: Config, recon: Reconciliation) -> None:
    """Refuse an input without rows: most often a wrong path or format, not an empty day."""
    if recon.input_rows == 0:
        raise DataError(
            f"input {config.input.path!r} has no rows; check --input (and the file format: "
            f"{config.input.format})"
        )


def no_customers(config: Config, start: dt.date, snapshot_date: dt.date) -> InputError:
    """The error of a window without one usable transaction (the dates miss the data)."""
    return InputError(
        f"no usable transactions between {start} and {snapshot_date} (exclusive) in "
        f"{config.input.path!r}; check --snapshot-date and --lookback-days"
    )


def ordered(spark: SparkSession, config: Config) -> bool:
    """Whether the valid rows come sorted by customer, day and order id within their partitions.

    The exact-duplicate grouping sorts them when the session allows it, and the aggregates
    after it can then stream instead of hashing.
    """
    return config.validation.duplicates == "quarantine" and sort_aggregation(spark)


def features_for(
    spark: SparkSession, config: Config, rows: DataFrame, snapshot_date: dt.date
) -> DataFrame:
    """Cached features of one snapshot from the valid rows of its window.

    The ``partition_by`` attributes are joined so that scoring can rank within groups; the
    result is cached because it is counted, scored and written.
    """
    is_ordered = ordered(spark, config)
    features = rfm_features(
        daily_aggregates(rows, ordered=is_ordered),
        snapshot_date=snapshot_date,
        lookback_days=config.features.lookback_days,
        ordered=is_ordered,
    )
    return with_attributes(spark, config, features).persist(StorageLevel.MEMORY_AND_DISK)


def with_attributes(spark: SparkSession, config: Config, features: DataFrame) -> DataFrame:
    """``features`` with the customer attributes that ``scoring.partition_by`` names, if any."""
    groups = list(config.scoring.partition_by)
    if not groups:
        return features
    attrs = read_customer_attributes(spark, config.input, groups)
    return features.join(attrs, on="customer_id", how="left")
