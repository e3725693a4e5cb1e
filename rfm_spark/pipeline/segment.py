"""The segment run: one snapshot from the input to one Delta commit of its partition.

input -> validation -> daily aggregates -> features -> scores -> segments -> clusters ->
commit. A rerun of a date replaces its partition atomically, and a retry with the same
idempotency key returns the earlier attempt's commit instead of writing again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from pyspark.sql import DataFrame, Observation, SparkSession

from rfm_spark.clustering import ClusterModel
from rfm_spark.config import Config
from rfm_spark.errors import UsageError
from rfm_spark.io.commits import Txn
from rfm_spark.pipeline.incremental import Window, activity_features, ingest
from rfm_spark.pipeline.quarantine import write_quarantine
from rfm_spark.pipeline.results import Reconciliation, SegmentResult, summary_of
from rfm_spark.pipeline.rows import (
    check_not_empty,
    features_for,
    no_customers,
    reconciliation,
    valid_rows,
)
from rfm_spark.pipeline.run import (
    Run,
    commit_metadata,
    commit_txn,
    current_model,
    model_metadata,
    run_rows,
    start_run,
)
from rfm_spark.progress import Progress
from rfm_spark.schemas import SNAPSHOT_COLUMN
from rfm_spark.scoring import ScoringInfo, score
from rfm_spark.session import is_connect


@dataclass(frozen=True)
class _Snapshot:
    """The snapshot a segment run makes and the window of input days it reads."""

    date: dt.date
    start: dt.date  # the first day of the window; the window ends the day before ``date``
    now: dt.datetime  # the run's start: future timestamps and the quarantine time


@dataclass(frozen=True)
class _Committed:
    """What the commit step leaves for the result."""

    version: int
    info: ScoringInfo
    recon: Reconciliation
    quarantine: tuple[str | None, int | None]


def run_segment(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    progress: Progress | None = None,
    run_id: str | None = None,
    rebuild: bool = False,
) -> SegmentResult:
    """Segment all customers as of ``snapshot_date`` and commit the snapshot's partition.

    A rerun of the same date replaces that partition in one atomic commit.

    Args:
        spark: The session.
        config: The run's configuration.
        snapshot_date: The snapshot: features cover the lookback window before this day.
        progress: Where the progress lines go (a new ``segment`` one when None).
        run_id: The run's id (a new one when None).
        rebuild: Incremental runs: read the whole input again into an emptied activity table.

    Returns:
        The committed version with its reconciliation, scoring and segment summary.
    """
    run = start_run(spark, config, "segment", progress=progress, run_id=run_id)
    run = replace(run, purpose=f"segment {snapshot_date}")
    txn = commit_txn(run)
    done = run.store.txn_version(run.path, txn) if txn is not None else None
    if done is not None:
        run.progress.info(f"idempotency key {config.output.idempotency_key!r} already committed")
        return replayed(run, done, snapshot_date)
    run.progress.info(
        f"run {run.run_id}: snapshot {snapshot_date}, scoring {config.scoring.method}, "
        f"scheme {run.scheme.name}"
    )
    model = current_model(run)
    start = snapshot_date - dt.timedelta(days=config.features.lookback_days)
    snap = _Snapshot(date=snapshot_date, start=start, now=dt.datetime.now(dt.timezone.utc))
    if config.features.mode == "incremental":
        check_classic(spark)
        committed = _incremental(run, snap, model, txn, rebuild=rebuild)
    else:
        committed = _score_and_commit(run, snap, model, txn)
    with run.progress.step("summarising the committed snapshot"):
        summary = summary_of(run.store, run.path, committed.version, snapshot_date, run.scheme)
    return SegmentResult(
        run_id=run.run_id,
        snapshot_date=snapshot_date,
        table_path=run.path,
        version=committed.version,
        customers=sum(s.customers for s in summary),
        reconciliation=committed.recon,
        scoring=committed.info,
        scheme=run.scheme.name,
        summary=summary,
        timings=dict(run.progress.timings),
        quarantine_path=committed.quarantine[0],
        quarantine_version=committed.quarantine[1],
    )


def _score_and_commit(
    run: Run, snap: _Snapshot, model: ClusterModel | None, txn: Txn | None
) -> _Committed:
    """Read the window, quarantine its bad rows, then score, segment and commit it.

    The features are cached for the count, the scoring plan and the write, and released
    whatever happens.
    """
    validated, rows, obs, dups = valid_rows(
        run.spark, run.config, start=snap.start, end=snap.date, now=snap.now
    )
    features = features_for(run.spark, run.config, rows, snap.date)
    try:
        recon, customers = _count(run, features, obs, dups)
        quarantine = write_quarantine(
            run,
            validated,
            recon=recon,
            window=(snap.start, snap.date),
            snapshot_date=snap.date,
            now=snap.now,
        )
        if customers == 0:
            raise no_customers(run.config, snap.start, snap.date)
        version, info = _commit(run, features, snap.date, model, recon, customers, txn)
    finally:
        features.unpersist()
    return _Committed(version=version, info=info, recon=recon, quarantine=quarantine)


def _incremental(
    run: Run, snap: _Snapshot, model: ClusterModel | None, txn: Txn | None, *, rebuild: bool
) -> _Committed:
    """Read the new input rows into the activity table, then score, segment and commit the
    snapshot from the activity of its window."""
    window = Window(snapshot=snap.date, start=snap.start, now=snap.now)
    intake = ingest(run, window, rebuild=rebuild)
    recon = intake.recon
    features = activity_features(run, snap.date)
    try:
        with run.progress.step("computing features from the activity of the window"):
            customers = features.count()
        if customers == 0:
            raise no_customers(run.config, snap.start, snap.date)
        version, info = _commit(
            run, features, snap.date, model, recon, customers, txn, made_by="incremental"
        )
    finally:
        features.unpersist()
    quarantine = run.config.table_path(run.config.output.quarantine_table)
    where = (
        (quarantine, intake.quarantine_version) if intake.quarantine_version is not None else None
    )
    return _Committed(version=version, info=info, recon=recon, quarantine=where or (None, None))


def _count(
    run: Run, features: DataFrame, obs: Observation, dups: Observation | None
) -> tuple[Reconciliation, int]:
    """Count the customers: the first action, which also fills the row counts.

    Returns:
        Where the input rows went and the customers in the window.

    Raises:
        DataError: The input has no rows.
    """
    with run.progress.step("reading and validating transactions, computing features"):
        customers = features.count()
    recon = reconciliation(obs, int((dups.get.get("duplicates") if dups else 0) or 0))
    run.progress.info(f"{recon.line()}; {customers:,} customers")
    check_not_empty(run.config, recon)
    return recon, customers


def _commit(
    run: Run,
    features: DataFrame,
    snapshot_date: dt.date,
    model: ClusterModel | None,
    recon: Reconciliation,
    customers: int,
    txn: Txn | None,
    *,
    made_by: str = "full",
) -> tuple[int, ScoringInfo]:
    """Score and segment the (cached, non-empty) features and commit them as one partition.

    Returns:
        The committed version and how the snapshot was scored.
    """
    config = run.config
    with run.progress.step(f"planning {config.scoring.method} scores"):
        scored, info = score(features, config.scoring, rows=customers)
        out = run_rows(
            run, scored, snapshot_date=snapshot_date, model=model, snapshot_dates=[snapshot_date]
        )
    metadata = commit_metadata(
        run,
        snapshot_date=snapshot_date,
        info=info,
        recon=recon,
        output_rows=customers,
        extra={**model_metadata(model), "made_by": made_by},
    )
    with run.progress.step(f"scoring, segmenting and committing to {run.path}"):
        version = run.store.write_partition(
            out,
            run.path,
            partition_column=SNAPSHOT_COLUMN,
            partition_value=snapshot_date,
            metadata=metadata,
            table_properties=config.history.table_properties(),
            txn=txn,
        )
    return version, info


def check_classic(spark: SparkSession) -> None:
    """Refuse an incremental run on a Spark Connect session.

    Raises:
        UsageError: The session is a Spark Connect client's: the streaming query would hand its
            micro-batches to a function on the server, without this run's state.
    """
    if is_connect(spark):
        raise UsageError(
            "incremental runs need a classic session (local or spark-submit): their streaming "
            "query hands each batch of new rows to this process, which a Spark Connect server "
            "cannot; run with --full through Spark Connect"
        )


def replayed(run: Run, version: int, snapshot_date: dt.date) -> SegmentResult:
    """The result of the earlier attempt that committed ``version`` (nothing is recomputed).

    Rebuilt from that commit's metadata and the table as committed, so a retried run reports
    what the attempt that succeeded did.
    """
    from rfm_spark.history import run_metadata

    commit = next(c for c in run.store.history(run.path) if c["version"] == version)
    meta = run_metadata(commit)
    scoring = meta.get("scoring") or {}
    summary = summary_of(run.store, run.path, version, snapshot_date, run.scheme)
    return SegmentResult(
        run_id=str(meta.get("run_id", "")),
        snapshot_date=snapshot_date,
        table_path=run.path,
        version=version,
        customers=sum(s.customers for s in summary),
        reconciliation=Reconciliation(**meta["reconciliation"]),
        scoring=ScoringInfo(
            method=str(scoring.get("method", meta.get("scoring_method", ""))),
            bins=int(scoring.get("bins", 0)),
            partition_by=tuple(scoring.get("partition_by", ())),
            cut_points=scoring.get("cut_points", {}),
            collapsed=scoring.get("collapsed", {}),
            ranges=scoring.get("ranges", {}),
        ),
        scheme=str(meta.get("scheme", run.scheme.name)),
        summary=summary,
        replayed=True,
    )
