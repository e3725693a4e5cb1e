"""The backfill run: many snapshots from one pass over the transactions.

The transactions are read once into daily aggregates (cached); the features of every
snapshot come from one aggregation over them, and one scoring pass scores every snapshot on
its own (the snapshot is a scoring group, so each snapshot's scores equal those of a
``segment`` run for that date).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.clustering import ClusterModel
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError
from rfm_spark.features import daily_aggregates, rfm_features_by_snapshot
from rfm_spark.pipeline.quarantine import write_quarantine
from rfm_spark.pipeline.results import BackfillResult, Reconciliation, SegmentResult
from rfm_spark.pipeline.rows import (
    check_not_empty,
    no_customers,
    ordered,
    reconciliation,
    valid_rows,
    with_attributes,
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
from rfm_spark.pipeline.windows import (
    WindowRows,
    info_of_snapshot,
    rows_per_window,
    window_reconciliation,
)
from rfm_spark.progress import Progress
from rfm_spark.schemas import SNAPSHOT_COLUMN
from rfm_spark.scoring import ScoringInfo, score

# metadata keys that describe one snapshot, left out of a multi-snapshot commit
_PER_SNAPSHOT = ("scoring",)


@dataclass(frozen=True)
class _Span:
    """The snapshots of a backfill and the input days they read together."""

    dates: list[dt.date]  # sorted, distinct
    lookback: int  # days of each snapshot's window
    now: dt.datetime  # the run's start: future timestamps and the quarantine time

    @property
    def start(self) -> dt.date:
        """The first day of the first snapshot's window."""
        return self.dates[0] - dt.timedelta(days=self.lookback)

    @property
    def end(self) -> dt.date:
        """The last snapshot (its day itself is not read)."""
        return self.dates[-1]


def snapshot_dates(start: dt.date, end: dt.date, step_days: int = 1) -> list[dt.date]:
    """``start, start + step, ...`` up to and including ``end``."""
    if step_days < 1:
        raise ConfigError(f"--step-days must be at least 1, got {step_days}")
    if end < start:
        raise ConfigError(
            f"--end {end} is before --start {start}; give an end on or after the start"
        )
    days = (end - start).days
    return [start + dt.timedelta(days=i) for i in range(0, days + 1, step_days)]


def run_backfill(
    spark: SparkSession,
    config: Config,
    dates: Sequence[dt.date],
    *,
    single_commit: bool = False,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> BackfillResult:
    """Build many snapshots from one pass over the transactions.

    The scored rows are cached and each date committed from them as its own version (history
    stays usable if a later commit fails), or all in one commit with ``single_commit``.

    Args:
        spark: The session.
        config: The run's configuration.
        dates: The snapshots (order and repeats do not matter).
        single_commit: Commit every snapshot in one version instead of one each.
        progress: Where the progress lines go (a new ``backfill`` one when None).
        run_id: The run's id (a new one when None).

    Raises:
        ConfigError: No dates, or a scheme that does not fit ``scoring.bins``.
    """
    if not dates:
        raise ConfigError("backfill needs at least one snapshot date")
    run = start_run(spark, config, "backfill", progress=progress, run_id=run_id)
    sorted_dates = sorted(set(dates))
    run = replace(run, purpose=f"backfill {sorted_dates[0]}..{sorted_dates[-1]}")
    txn = commit_txn(run)
    if txn is not None:
        run.store.txn_version(run.path, txn)  # a key used for another run is refused here
    run.progress.info(
        f"run {run.run_id}: {len(sorted_dates)} snapshots {sorted_dates[0]} .. "
        f"{sorted_dates[-1]}, scoring {config.scoring.method}, scheme {run.scheme.name}"
    )
    model = current_model(run)
    span = _Span(sorted_dates, config.features.lookback_days, dt.datetime.now(dt.timezone.utc))
    cached: list[DataFrame] = []
    try:
        return _backfill(run, span, model, cached, single_commit=single_commit)
    finally:
        for df in reversed(cached):  # the scored rows first, the daily aggregates last
            df.unpersist()


def _backfill(
    run: Run,
    span: _Span,
    model: ClusterModel | None,
    cached: list[DataFrame],
    *,
    single_commit: bool,
) -> BackfillResult:
    """The steps of :func:`run_backfill`, caching into ``cached`` for the caller to release."""
    validated, rows, obs, _ = valid_rows(
        run.spark, run.config, start=span.start, end=span.end, now=span.now
    )
    daily = _cache(cached, daily_aggregates(rows, ordered=ordered(run.spark, run.config)))
    with run.progress.step("reading and validating transactions once into daily aggregates"):
        windows, span_duplicates = rows_per_window(daily, span.dates, span.lookback)
    recon = reconciliation(obs, span_duplicates)
    check_not_empty(run.config, recon)
    quarantine_path, quarantine_version = write_quarantine(
        run,
        validated,
        recon=recon,
        window=(span.start, span.end),
        snapshot_date=span.end,
        now=span.now,
    )
    features, counts = _features(run, daily, span, cached)
    out, info = _score(run, features, counts, model, cached)
    results = [
        replace(
            _snapshot_result(run, snap, recon, windows[snap], info, counts[snap]),
            quarantine_path=quarantine_path,
            quarantine_version=quarantine_version,
        )
        for snap in span.dates
    ]
    versions = _commit(run, out, results, model, single_commit=single_commit)
    return BackfillResult(
        run_id=run.run_id,
        table_path=run.path,
        versions=versions,
        snapshots=[
            replace(r, version=versions[0] if single_commit else versions[i])
            for i, r in enumerate(results)
        ],
        timings=dict(run.progress.timings),
        reconciliation=recon,
        quarantine_path=quarantine_path,
        quarantine_version=quarantine_version,
    )


def _cache(cached: list[DataFrame], df: DataFrame) -> DataFrame:
    """Persist ``df`` and remember it for release when the run ends, however it ends."""
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(df)
    return df


def _features(
    run: Run, daily: DataFrame, span: _Span, cached: list[DataFrame]
) -> tuple[DataFrame, dict[dt.date, int]]:
    """The cached features of every snapshot, from one aggregation, and customers per snapshot.

    Raises:
        InputError: A snapshot has no customers (the dates miss the data).
    """
    features = rfm_features_by_snapshot(
        daily, snapshot_dates=span.dates, lookback_days=span.lookback
    )
    features = _cache(cached, with_attributes(run.spark, run.config, features))
    with run.progress.step(f"features of {len(span.dates)} snapshots in one aggregation"):
        counts = {
            r[SNAPSHOT_COLUMN]: int(r["count"])
            for r in features.groupBy(SNAPSHOT_COLUMN).count().collect()
        }
    empty = [d for d in span.dates if not counts.get(d)]
    if empty:
        raise no_customers(run.config, empty[0] - dt.timedelta(days=span.lookback), empty[0])
    return features, counts


def _score(
    run: Run,
    features: DataFrame,
    counts: dict[dt.date, int],
    model: ClusterModel | None,
    cached: list[DataFrame],
) -> tuple[DataFrame, ScoringInfo]:
    """Score and segment every snapshot in one pass, the snapshot being a scoring group.

    The rows are cached and counted so that each commit after reads them instead of
    recomputing the whole plan.
    """
    config = run.config
    by_snapshot = config.scoring.model_copy(
        update={"partition_by": [SNAPSHOT_COLUMN, *config.scoring.partition_by]}
    )
    with run.progress.step(f"planning {config.scoring.method} scores of every snapshot"):
        scored, info = score(features, by_snapshot, rows=sum(counts.values()))
    out = run_rows(run, scored, snapshot_date=None, model=model, snapshot_dates=sorted(counts))
    out = _cache(cached, out)
    with run.progress.step("scoring and segmenting every snapshot"):
        out.count()
    return out, info


def _snapshot_result(
    run: Run,
    snap: dt.date,
    span: Reconciliation,
    window: WindowRows,
    info: ScoringInfo,
    customers: int,
) -> SegmentResult:
    """What a ``segment`` run of ``snap`` would report, before the snapshot is committed."""
    return SegmentResult(
        run_id=run.run_id,
        snapshot_date=snap,
        table_path=run.path,
        version=-1,
        customers=customers,
        reconciliation=window_reconciliation(span, window),
        scoring=info_of_snapshot(info, snap, list(run.config.scoring.partition_by)),
        scheme=run.scheme.name,
        summary=[],
    )


def _commit(
    run: Run,
    out: DataFrame,
    results: list[SegmentResult],
    model: ClusterModel | None,
    *,
    single_commit: bool,
) -> list[int]:
    """Commit every snapshot, each as its own version or all in one.

    Returns:
        The versions committed, in snapshot order (one with ``single_commit``).
    """
    dates = [r.snapshot_date for r in results]
    extra = {"backfill": f"{dates[0]}..{dates[-1]}", **model_metadata(model)}
    metas = [
        commit_metadata(
            run,
            snapshot_date=r.snapshot_date,
            info=r.scoring,
            recon=r.reconciliation,
            output_rows=r.customers,
            extra=extra,
        )
        for r in results
    ]
    if single_commit:
        return [_commit_once(run, out, results, metas[-1])]
    return [
        _commit_snapshot(run, out, i, snap, meta)
        for i, (snap, meta) in enumerate(zip(dates, metas, strict=True))
    ]


def _commit_once(
    run: Run, out: DataFrame, results: list[SegmentResult], last: dict[str, str]
) -> int:
    """One version replacing every snapshot's partition, with metadata for them all.

    ``last`` is the last snapshot's metadata; its per-snapshot keys are dropped and the
    snapshot date, reconciliation and row counts cover every snapshot.
    """
    dates = [r.snapshot_date for r in results]
    with run.progress.step(f"committing {len(dates)} snapshots in one commit"):
        version = run.store.write_partitions(
            out,
            run.path,
            partition_column=SNAPSHOT_COLUMN,
            partition_values=dates,
            metadata={
                **{k: v for k, v in last.items() if k not in _PER_SNAPSHOT},
                "snapshot_date": f"{dates[0]}..{dates[-1]}",
                "snapshots": json.dumps(
                    {r.snapshot_date.isoformat(): r.customers for r in results}
                ),
                "reconciliation": json.dumps(
                    {r.snapshot_date.isoformat(): r.reconciliation.as_dict() for r in results}
                ),
                "output_rows": str(sum(r.customers for r in results)),
            },
            table_properties=run.config.history.table_properties(),
            txn=commit_txn(run),
        )
    return version


def _commit_snapshot(
    run: Run, out: DataFrame, index: int, snap: dt.date, metadata: dict[str, str]
) -> int:
    """Commit one snapshot's rows as the run's ``index``-th version (its idempotent identity)."""
    with run.progress.step(f"snapshot {snap}: commit"):
        version = run.store.write_partition(
            out.filter(F.col(SNAPSHOT_COLUMN) == F.lit(snap)),
            run.path,
            partition_column=SNAPSHOT_COLUMN,
            partition_value=snap,
            metadata=metadata,
            table_properties=run.config.history.table_properties(),
            txn=commit_txn(run, index),
        )
    return version
