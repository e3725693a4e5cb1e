"""Incremental runs: the new input rows into the activity table, a snapshot's features from it.

Each run reads only the rows that arrived since the last one (:mod:`rfm_spark.io.new_input`),
validates them, quarantines the bad ones and the copies of rows already taken, and adds the
rest to their days in ``customer_day_activity`` (:mod:`rfm_spark.activity`). The snapshot's
features are then computed from the activity of its window: the same features a full run
computes from the input, customer by customer.

A micro-batch writes the quarantine, then the activity, each idempotently on the batch id: a
batch that failed (too many bad rows) or was cut short by a crash is read again by the next run,
and what it already committed is not committed twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark import __version__
from rfm_spark.activity import (
    daily_activity,
    fingerprinted,
    merged_days,
    unseen_rows,
)
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError, InputError
from rfm_spark.features import rfm_features
from rfm_spark.io.commits import Txn
from rfm_spark.io.inputs import change_feed_on, stream_transactions
from rfm_spark.io.new_input import (
    checkpoint_exists,
    files_gone,
    query_id,
    read_new_rows,
    remove_checkpoint,
)
from rfm_spark.paths import join
from rfm_spark.pipeline.batch_counts import BatchCounts
from rfm_spark.pipeline.changes import (
    Withdrawn,
    added_rows,
    compared_with,
    with_recomputed,
    withdrawn_rows,
)
from rfm_spark.pipeline.quarantine import quarantine_batch
from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.pipeline.rows import with_attributes
from rfm_spark.pipeline.run import Run
from rfm_spark.schemas import ACTIVITY_PARTITION, ACTIVITY_SCHEMA

INPUT_KEY = "input"  # commit metadata: the input the activity was read from
RULES_KEY = "input_rules"  # commit metadata: the hash of the settings it was built with


@dataclass(frozen=True)
class Window:
    """The snapshot an incremental run makes: its window, and the run's start."""

    snapshot: dt.date
    start: dt.date
    now: dt.datetime


@dataclass(frozen=True)
class _Activity:
    table: str
    checkpoint: str  # what the streaming query has read of the input
    change_feed: bool  # the input is a Delta table whose changes are read


def _rules(config: Config, change_feed: bool) -> str:
    """A hash of the settings that decide what an input row becomes in the activity table:
    the activity is only valid for the rules it was built with (and for the way the input
    was read: its change data feed, turned on or off, makes the checkpoint another query's)."""
    rules: dict[str, object] = {
        "input": config.input.model_dump(mode="json", exclude={"customers_path"}),
        "time_zone": config.features.time_zone,
        "duplicates": config.validation.duplicates,
    }
    if change_feed:  # absent otherwise: the hash of tables built before stays the same
        rules["change_feed"] = True
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


def _activity(run: Run) -> _Activity:
    """Where the activity and its checkpoint live, and whether the input's changes are read
    (asked of the input once per run)."""
    config = run.config
    name = config.output.activity_table
    feed = change_feed_on(run.spark, config.input)
    return _Activity(_table(config), join(config.warehouse, "_checkpoints", name), feed)


def _table(config: Config) -> str:
    return config.table_path(config.output.activity_table)


@dataclass(frozen=True)
class Intake:
    """What reading the new input did: where its rows went, and the quarantine version that
    holds its bad rows (None when it had none)."""

    recon: Reconciliation
    quarantine_version: int | None


def ingest(run: Run, window: Window, *, rebuild: bool = False) -> Intake:
    """Read the input rows not read before into the activity table.

    Args:
        run: The run.
        window: The snapshot being made (the reconciliation places rows relative to it).
        rebuild: Forget what was read and read the whole input again into an emptied table.

    Returns:
        Where this run's new rows went, relative to ``window`` (all zero when nothing arrived),
        and the last quarantine version its batches wrote.
    """
    where = _activity(run)
    if rebuild:
        _start_over(run, where)
    else:
        _check_state(run, where)
    stream = stream_transactions(
        run.spark,
        run.config.input,
        now=window.now,
        changes=where.change_feed,
        files_per_batch=run.config.features.files_per_batch,
    )
    parts: list[tuple[Reconciliation, int | None]] = []
    app: list[str] = []

    def handle(batch: DataFrame, batch_id: int) -> None:
        # keyed on the query's id: a new checkpoint never reuses an old one's batch ids
        app[:] = app or [f"rfm-spark-activity:{query_id(run.spark, where.checkpoint)}"]
        parts.append(_add_batch(run, batch, Txn(app[0], batch_id), where, window))

    with run.progress.step(f"reading the new input rows into {where.table}"):
        batches = read_new_rows(stream, where.checkpoint, handle)
    recon = Reconciliation(0, 0, 0, 0, {})
    for part, _ in parts:
        recon = recon + part
    run.progress.info(f"{len(batches)} new batch(es) of input; {recon.line()}")
    versions = [v for _, v in parts if v is not None]
    return Intake(recon, max(versions) if versions else None)


def _check_state(run: Run, where: _Activity) -> None:
    """The activity table and the record of what it has read belong together.

    Raises:
        ConfigError: The table exists without its record, or was read from another input.
    """
    has_table = run.store.exists(where.table)
    has_record = checkpoint_exists(run.spark, where.checkpoint)
    if has_record and not has_table:
        run.progress.info(f"no {where.table}: reading the whole input again")
        remove_checkpoint(run.spark, where.checkpoint)
    elif has_table and not has_record:
        raise ConfigError(
            f"{where.table} exists but {where.checkpoint}, the record of which input rows it "
            "holds, is missing; run with --rebuild to read the whole input into it again, or "
            "with --full for this snapshot"
        )
    elif has_table:
        source = str(run.config.input.path)
        latest: dict[str, str] = next(
            (c["metadata"] for c in run.store.history(where.table) if c["metadata"]), {}
        )
        if latest.get(INPUT_KEY, source) != source:
            raise ConfigError(
                f"{where.table} was read from the input {latest[INPUT_KEY]!r}, not {source!r}; run "
                "with --rebuild to read this input into it instead, with --full for this "
                "snapshot, or set output.activity_table to another name for this input"
            )
        rules = _rules(run.config, where.change_feed)
        if latest.get(RULES_KEY, rules) != rules:
            raise ConfigError(
                f"{where.table} was built with other input, time zone or duplicate settings "
                "than this run's (or before the input's change data feed was turned on or off); "
                "run with --rebuild to read the whole input again with these settings, or with "
                "--full for this snapshot"
            )
        _check_files(run, where)


def _check_files(run: Run, where: _Activity) -> None:
    """The files read before are still there, unchanged: a file source reads each file once, so
    a file removed or rewritten in place would leave rows in the activity the input no longer
    has (and never read the new content).

    Raises:
        InputError: Files read before were removed or rewritten.
    """
    if run.config.input.format not in ("parquet", "csv"):
        return
    removed, rewritten = files_gone(run.spark, where.checkpoint, str(run.config.input.path))
    if removed or rewritten:
        names = [*(f"{p} (removed)" for p in removed), *(f"{p} (rewritten)" for p in rewritten)]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise InputError(
            f"{len(names)} input file(s) read into {where.table} were removed or rewritten since: "
            f"{', '.join(names[:3])}{more}. The table may hold rows the input no longer has; run "
            "with --rebuild to read the whole input again, or with --full for this snapshot "
            "(new input should arrive as new files)"
        )


def _start_over(run: Run, where: _Activity) -> None:
    """Forget what was read, then empty the activity table in one commit (its history keeps
    the old content); the query that follows reads the whole input. In this order, a crash in
    between leaves a table without its record, which the next run refuses to add to."""
    remove_checkpoint(run.spark, where.checkpoint)
    days = _days(run.store.read(where.table)) if run.store.exists(where.table) else []
    if not days:  # nothing to empty
        return
    with run.progress.step(f"emptying {len(days)} day(s) of {where.table} to read it all again"):
        run.store.write_partitions(
            run.spark.createDataFrame([], ACTIVITY_SCHEMA),
            where.table,
            partition_column=ACTIVITY_PARTITION,
            partition_values=days,
            metadata=_metadata(run, where, Reconciliation(0, 0, 0, 0, {})),
        )


def _add_batch(
    run: Run, batch: DataFrame, txn: Txn, where: _Activity, window: Window
) -> tuple[Reconciliation, int | None]:
    """Quarantine a micro-batch's bad rows and copies, then add the rest to the activity (a
    change feed's withdrawn rows: their customer-days recomputed, :mod:`.changes`).

    The batch is not cached (a first read of a large history would not fit): it is read once
    for its counts and days and once into the comparison with the activity, whose narrow
    result is cached for the counts of copies and the write; a batch with bad rows or copies
    is read again for their quarantine (the original rows). A change feed's batch, read twice
    more for its withdrawn rows, is cached.

    Returns:
        Where the batch's new rows went, and the quarantine version that took its bad rows.
    """
    withdrawn = taken = None
    if where.change_feed:
        batch = batch.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        validated = added_rows(batch)
        with run.progress.step(f"batch {txn.version}: validating the new rows"):
            counts = BatchCounts.of(validated, window.start, window.snapshot)
            withdrawn = withdrawn_rows(batch)
        days = sorted({*counts.days, *(withdrawn.days if withdrawn else [])})
        quarantine = run.config.table_path(run.config.output.quarantine_table)
        done = _committed(run, where.table if days else quarantine, txn)
        if done is not None:  # a replay of a batch an earlier run committed: nothing again
            run.progress.info(f"batch {txn.version} was committed by an earlier run")
            quarantined = run.store.txn_version(quarantine, txn) if done.quarantined else None
            return done, quarantined
        rows = fingerprinted(validated.filter(F.col("reject_reason").isNull()))
        existing = _existing(run, where.table, days)
        dedupe = run.config.validation.duplicates == "quarantine"
        taken = unseen_rows(rows, compared_with(existing, withdrawn), dedupe=dedupe)
        taken = taken.persist(StorageLevel.MEMORY_AND_DISK)
        with run.progress.step(
            f"batch {txn.version}: comparing with {len(days)} day(s) of activity"
        ):
            recon = counts.reconciliation(taken)
        when = (window.snapshot, window.now)
        version = quarantine_batch(run, validated, (rows, taken), recon, when, txn)
        if days:
            old, fresh = with_recomputed(
                run, existing, taken.filter(~F.col("_seen")), withdrawn, window.now
            )
            _tell_withdrawn(run, txn, withdrawn)
            # one task per day: one file per day partition, not one per task and day
            merged = merged_days(old, fresh).repartition(ACTIVITY_PARTITION)
            with run.progress.step(
                f"batch {txn.version}: rewriting {len(days)} day(s) of activity"
            ):
                _write_days(run, merged, where, days, recon, txn)
        return recon, version
    finally:
        if withdrawn is not None:
            withdrawn.release()
        if taken is not None:
            taken.unpersist()
        if where.change_feed:
            batch.unpersist()


def _tell_withdrawn(run: Run, txn: Txn, withdrawn: Withdrawn | None) -> None:
    if withdrawn is not None:
        run.progress.info(
            f"batch {txn.version}: {withdrawn.count:,} row(s) updated or deleted in the input; "
            f"their customer-days are recomputed from input version {withdrawn.version}"
        )


def _write_days(
    run: Run,
    merged: DataFrame,
    where: _Activity,
    days: list[dt.date],
    recon: Reconciliation,
    txn: Txn,
) -> None:
    """Replace the touched days of the activity table in one commit, idempotent on the batch."""
    run.store.write_partitions(
        merged,
        where.table,
        partition_column=ACTIVITY_PARTITION,
        partition_values=days,
        metadata=_metadata(run, where, recon),
        table_properties=run.config.history.table_properties(),
        txn=txn,
    )


def _metadata(run: Run, where: _Activity, recon: Reconciliation) -> dict[str, str]:
    """What an activity commit records: the input and rules it was read with, the rows."""
    return {
        "run_id": run.run_id,
        INPUT_KEY: str(run.config.input.path),
        RULES_KEY: _rules(run.config, where.change_feed),
        "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
        "rfm_spark_version": __version__,
    }


def _days(rows: DataFrame) -> list[dt.date]:
    """The days ``rows`` hold, in order."""
    return sorted(r[0] for r in rows.select(ACTIVITY_PARTITION).distinct().collect())


def _committed(run: Run, path: str, txn: Txn) -> Reconciliation | None:
    """The reconciliation recorded by the commit of ``txn`` to ``path``, if it was made."""
    version = run.store.txn_version(path, txn) if run.store.exists(path) else None
    if version is None:
        return None
    commit = next(c for c in run.store.history(path) if c["version"] == version)
    return Reconciliation(**json.loads(commit["metadata"]["reconciliation"]))


def _existing(run: Run, table: str, days: list[dt.date]) -> DataFrame:
    """The activity rows of ``days`` (none before the table exists)."""
    if not days or not run.store.exists(table):
        return run.spark.createDataFrame([], ACTIVITY_SCHEMA)
    return run.store.read(table).filter(F.col(ACTIVITY_PARTITION).isin(days))


def activity_features(run: Run, snapshot_date: dt.date) -> DataFrame:
    """Cached features of one snapshot from the activity of its window."""
    table = _table(run.config)
    lookback = run.config.features.lookback_days
    activity = (
        run.store.read(table)
        if run.store.exists(table)
        else run.spark.createDataFrame([], ACTIVITY_SCHEMA)
    )
    start = snapshot_date - dt.timedelta(days=lookback)
    day = F.col(ACTIVITY_PARTITION)
    window = activity.filter((day >= F.lit(start)) & (day < F.lit(snapshot_date)))
    features = rfm_features(
        daily_activity(window), snapshot_date=snapshot_date, lookback_days=lookback
    )
    return with_attributes(run.spark, run.config, features).persist(StorageLevel.MEMORY_AND_DISK)
