"""An incremental snapshot's features: the kept window state moved forward, or the whole window.

The state (:mod:`rfm_spark.window_state`) is a cache: it is written after every incremental
snapshot and used by the next one when it can be; when it cannot (none yet, another lookback,
an earlier snapshot, a whole window later, the activity's change data feed unreadable, most
customers changed), the window's activity is aggregated again, as without it. Losing the
state costs one recompute. A crash between the state's commit and the snapshot's leaves a
state that is right for its own snapshot and activity version.

The state needs the activity table's change data feed, which the Delta connector reads; with
the delta-rs fallback every run aggregates the whole window.
"""

from __future__ import annotations

import datetime as dt

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark import __version__
from rfm_spark.errors import java_error_line
from rfm_spark.features import from_window_sums, window_sums
from rfm_spark.pipeline.rows import with_attributes
from rfm_spark.pipeline.run import Run
from rfm_spark.schemas import ACTIVITY_SCHEMA
from rfm_spark.window_state import (
    PARTITION,
    Kept,
    affected_customers,
    in_window,
    moved_sums,
)

# Up to this many affected customers are sent to every task; beyond it, and when they are
# most of the state's customers, the whole window is aggregated again (cheaper than a join).
BROADCAST_MAX = 1_000_000
CUSTOMERS_KEY = "customers"


def window_features(run: Run, snapshot_date: dt.date) -> tuple[DataFrame, int]:
    """The features of one snapshot from the activity of its window (cached), and how many
    customers they hold; the window state is moved to this snapshot and kept.

    Returns:
        Cached features (:func:`rfm_spark.features.rfm_features` columns, with the customer
        attributes scoring needs) and their row count.
    """
    config = run.config
    table = config.table_path(config.output.activity_table)
    lookback = config.features.lookback_days
    native = run.store.backend == "spark"
    if run.store.exists(table):
        version = run.store.version(table)
        activity = run.store.read(table, version=version)
    else:
        version, activity = -1, run.spark.createDataFrame([], ACTIVITY_SCHEMA)
    window = in_window(activity, snapshot_date, lookback)
    affected: list[DataFrame] = []  # cached until the sums are
    moved = _moved(run, activity, window, snapshot_date, version, affected) if native else None
    sums = (moved if moved is not None else window_sums(window)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        with run.progress.step("computing features from the activity of the window"):
            customers = sums.count()
            for cached in affected:
                cached.unpersist()
            if native and version >= 0:
                _keep(run, sums, Kept(snapshot_date, lookback, version), customers)
            features = from_window_sums(sums, snapshot=F.lit(snapshot_date))
            features = with_attributes(run.spark, config, features)
            features = features.persist(StorageLevel.MEMORY_AND_DISK)
            features.count()
    finally:
        sums.unpersist()
    return features, customers


def _state_path(run: Run) -> str:
    return run.config.table_path(run.config.output.window_state_table)


def _kept(run: Run, lookback: int) -> tuple[Kept, int, int] | None:
    """The newest kept state for ``lookback``: its description, the state table version that
    wrote it, and its customer count."""
    path = _state_path(run)
    if not run.store.exists(path):
        return None
    for commit in run.store.history(path):
        meta = commit["metadata"] or {}
        kept = Kept.from_metadata(meta)
        if kept is not None and kept.lookback == lookback:
            return kept, commit["version"], int(meta[CUSTOMERS_KEY])
    return None


def _moved(
    run: Run,
    activity: DataFrame,
    window: DataFrame,
    snapshot: dt.date,
    version: int,
    cached: list[DataFrame],
) -> DataFrame | None:
    """The new window's sums from the kept state, or None when it cannot be used (the
    customers it computes again are cached, and added to ``cached``)."""
    from rfm_spark.io.spark_delta import changed_rows

    if version < 0:  # no activity table yet
        return None
    lookback = run.config.features.lookback_days
    found = _kept(run, lookback)
    if found is None:
        run.progress.info("no window state kept yet: aggregating the whole window")
        return None
    kept, state_version, customers = found
    why = kept.unusable_for(snapshot, lookback, version)
    if why is not None:
        run.progress.info(f"the window state is not used ({why}): aggregating the whole window")
        return None
    table = run.config.table_path(run.config.output.activity_table)
    try:
        changed = (
            changed_rows(run.spark, table, after=kept.activity_version, upto=version)
            if version > kept.activity_version
            else None
        )
        affected = affected_customers(activity, changed, kept.moved_days(snapshot))
        affected = affected.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(affected)
        with run.progress.step("finding the customers whose window changed"):
            count = affected.count()
    except Exception as exc:  # the feed is off or its files are gone: the state is a cache
        line = java_error_line(exc) or type(exc).__name__
        run.progress.info(
            f"the window state is not used (the activity's changes since version "
            f"{kept.activity_version} cannot be read: {line}): aggregating the whole window"
        )
        return None
    if count > BROADCAST_MAX and count > customers // 2:
        run.progress.info(
            f"{count:,} of {customers:,} customers changed since the window state of "
            f"{kept.snapshot}: aggregating the whole window"
        )
        return None
    run.progress.info(
        f"moving the window state of {kept.snapshot} to {snapshot}: {count:,} of "
        f"{customers:,} customers changed"
    )
    state = run.store.read(_state_path(run), version=state_version)
    state = state.filter(F.col(PARTITION) == lookback).drop(PARTITION)
    return moved_sums(state, window, affected, broadcast=count <= BROADCAST_MAX)


def _keep(run: Run, sums: DataFrame, kept: Kept, customers: int) -> None:
    """Write the window sums as the state of ``kept`` (one commit, its lookback's partition)."""
    run.store.write_partition(
        sums.withColumn(PARTITION, F.lit(kept.lookback)),
        _state_path(run),
        partition_column=PARTITION,
        partition_value=str(kept.lookback),
        metadata={
            **kept.metadata(),
            CUSTOMERS_KEY: str(customers),
            "run_id": run.run_id,
            "rfm_spark_version": __version__,
        },
    )
