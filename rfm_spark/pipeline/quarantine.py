"""The quarantine write: a run's bad rows, kept where they can be fixed, and the share limit.

The bad rows are written before the share check so that a run refused for too many bad rows
still leaves them to look at; nothing reaches ``customer_segments`` in that case.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark import __version__
from rfm_spark.activity import duplicates
from rfm_spark.errors import DataError
from rfm_spark.io.commits import Txn
from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.pipeline.run import Run, commit_txn
from rfm_spark.schemas import QUARANTINE_SCHEMA, SNAPSHOT_COLUMN
from rfm_spark.validation import DUPLICATE, ROW, as_quarantine, quarantine_rows


def write_quarantine(
    run: Run,
    validated: DataFrame,
    *,
    recon: Reconciliation,
    window: tuple[dt.date, dt.date],
    snapshot_date: dt.date,
    now: dt.datetime,
) -> tuple[str | None, int | None]:
    """Replace the ``snapshot_date`` partition of the quarantine table with this run's bad rows,
    then fail the run when too many rows were bad.

    Args:
        run: The run.
        validated: The validated input (bad rows carry their reason).
        recon: Where the input rows went.
        window: The days whose duplicates were quarantined.
        snapshot_date: The partition to replace.
        now: The run's start (the quarantine time of the rows).

    Returns:
        (path, version) of the quarantine commit, or (None, None) when there was nothing to
        write (no bad rows and no quarantine table yet).

    Raises:
        DataError: More than ``validation.max_quarantine_share`` of the input rows are bad.
    """
    config = run.config
    path = config.table_path(config.output.quarantine_table)
    total = recon.quarantined_rows
    version = None
    if total or run.store.exists(path):  # an existing partition is emptied by a clean rerun
        rows = (
            quarantine_rows(
                validated,
                window=window,
                duplicates=bool(recon.quarantined.get(DUPLICATE)),
                snapshot_date=snapshot_date,
                run_id=run.run_id,
                source=str(config.input.path),
                now=now,
            )
            if total
            else validated.sparkSession.createDataFrame([], QUARANTINE_SCHEMA)
        )
        with run.progress.step(f"writing {total:,} quarantined row(s) to {path}"):
            version = _replace(run, rows, path, snapshot_date, recon, commit_txn(run))
    check_share(run, recon)
    return (path if version is not None else None), version


def check_share(run: Run, recon: Reconciliation) -> None:
    """Refuse the run when bad rows exceed ``validation.max_quarantine_share`` of the input."""
    config = run.config
    path = config.table_path(config.output.quarantine_table)
    total = recon.quarantined_rows
    limit = config.validation.max_quarantine_share
    share = total / recon.input_rows if recon.input_rows else 0.0
    if share > limit:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(recon.quarantined.items()))
        raise DataError(
            f"{total:,} of {recon.input_rows:,} input rows ({share:.2%}) are bad ({reasons}), "
            f"more than validation.max_quarantine_share ({limit:.2%}); nothing was committed "
            f"to {config.output.table}. The rows are in {path} (run_id {run.run_id}). Fix the "
            "input or raise validation.max_quarantine_share"
        )


def add_to_quarantine(
    run: Run,
    bad: DataFrame,
    recon: Reconciliation,
    snapshot_date: dt.date,
    now: dt.datetime,
    txn: Txn,
) -> int:
    """Add an incremental batch's bad rows (``reason``, ``_row``) to the ``snapshot_date``
    partition of the quarantine table, next to those earlier batches of the same snapshot put
    there; idempotent on ``txn`` (the batch)."""
    config = run.config
    path = config.table_path(config.output.quarantine_table)
    rows = as_quarantine(
        bad, snapshot_date=snapshot_date, run_id=run.run_id, source=str(config.input.path), now=now
    )
    if run.store.exists(path):
        earlier = run.store.read(path).filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        rows = earlier.unionByName(rows)
    with run.progress.step(f"adding {recon.quarantined_rows:,} quarantined row(s) to {path}"):
        return _replace(run, rows, path, snapshot_date, recon, txn)


def _replace(
    run: Run,
    rows: DataFrame,
    path: str,
    snapshot_date: dt.date,
    recon: Reconciliation,
    txn: Txn | None,
) -> int:
    """Replace the ``snapshot_date`` partition of the quarantine table with ``rows``."""
    return run.store.write_partition(
        rows,
        path,
        partition_column=SNAPSHOT_COLUMN,
        partition_value=snapshot_date,
        metadata={
            "run_id": run.run_id,
            "snapshot_date": snapshot_date.isoformat(),
            "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
            "rfm_spark_version": __version__,
        },
        table_properties=run.config.history.table_properties(),
        txn=txn,
    )


def quarantine_batch(
    run: Run,
    validated: DataFrame,
    compared: tuple[DataFrame, DataFrame],
    recon: Reconciliation,
    when: tuple[dt.date, dt.datetime],
    txn: Txn,
) -> int | None:
    """Quarantine an incremental batch's bad rows and copies, then refuse the batch when too
    many of its rows were bad.

    Args:
        validated: The batch's validated rows.
        compared: Its valid rows (:func:`~rfm_spark.activity.fingerprinted`) and those rows
            compared with the activity (:func:`~rfm_spark.activity.unseen_rows`).
        when: The snapshot being made and the run's start.

    Returns:
        The quarantine version that took them (None when the batch had none).
    """
    version = None
    if recon.quarantined_rows:
        bad = validated.filter(F.col("reject_reason").isNotNull()).select(
            F.col("reject_reason").alias("reason"), ROW
        )
        rows, taken = compared
        copies = duplicates(taken, rows)
        version = add_to_quarantine(run, bad.unionByName(copies), recon, *when, txn)
    # copies of rows already read are expected (a file delivered twice): they are
    # quarantined but do not count against the share of bad rows
    reasons = {r: n for r, n in recon.quarantined.items() if r != DUPLICATE}
    check_share(run, replace(recon, quarantined=reasons))
    return version
