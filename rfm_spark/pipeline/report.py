"""The report run: collect a snapshot's aggregates, draw them, write one HTML file.

Only aggregates and capped lists are collected (:mod:`rfm_spark.report.aggregates`): the
driver holds a few hundred numbers whether the snapshot has 20 thousand customers or 20
million. The snapshot's partition is cached on the executors for the dozen small aggregations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark import transitions as tr
from rfm_spark.config import Config
from rfm_spark.errors import SchemeError, TransitionUsageError, UsageError
from rfm_spark.history import run_metadata
from rfm_spark.io.exports import write_text
from rfm_spark.io.store import TableStore, open_store
from rfm_spark.progress import Progress
from rfm_spark.report import aggregates as agg
from rfm_spark.report.content import Histogram, ReportData
from rfm_spark.report.html import render
from rfm_spark.schemas import CHURN_TABLE, CLV_TABLE, SNAPSHOT_COLUMN
from rfm_spark.segments import Scheme, load_scheme

_COLUMNS = [
    "customer_id", "recency_days", "frequency", "monetary", "avg_order_value", "r_score",
    "f_score", "m_score", "segment", "cluster_id", "cluster_name", "attribute_segments",
]  # fmt: skip


@dataclass(frozen=True)
class ReportResult:
    """What a report run wrote."""

    path: str
    snapshot: dt.date
    customers: int
    bytes: int


def run_report(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    out: str,
    *,
    days: int | None = None,
    outliers: int = 20,
    progress: Progress | None = None,
) -> ReportResult:
    """Write the report of ``snapshot_date`` to ``out`` (a local path or any Hadoop URI).

    Args:
        days: How far back the transitions look (default ``history.transition_days``).
        outliers: How many outliers the report lists by id (all are counted).

    Raises:
        UsageError: No table, or no snapshot on ``snapshot_date``.
    """
    progress = progress or Progress("report")
    days = days if days is not None else config.history.transition_days
    with progress.step(f"collecting the aggregates of {snapshot_date}"):
        data = collect(spark, config, snapshot_date, days=days, outliers=outliers)
    with progress.step("drawing the charts and writing the page"):
        page = render(data, days=days)
        write_text(out, page, spark)
    customers = sum(
        int(r["customers"])
        for r in data.headline.to_dict("records")
        if r["snapshot_date"] == snapshot_date
    )
    return ReportResult(out, snapshot_date, customers, len(page.encode()))


def collect(
    spark: SparkSession, config: Config, snapshot_date: dt.date, *, days: int, outliers: int
) -> ReportData:
    """Every aggregate the report shows, collected to the driver."""
    store = open_store(spark)
    path = config.table_path()
    if not store.exists(path):
        raise UsageError(
            f"no customer_segments table at {path}; run 'rfm-spark segment --snapshot-date "
            f"{snapshot_date}' first"
        )
    segments = store.read(path)
    available = tr.available_snapshots(segments)
    pair = _pair(available, snapshot_date, days)
    previous = max((d for d in available if d < snapshot_date), default=None)
    snap = (
        segments.filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        .select(*_COLUMNS)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        return _gather(store, config, segments, snap, snapshot_date, previous, pair, outliers)
    finally:
        snap.unpersist()


def _pair(available: list[dt.date], snapshot_date: dt.date, days: int) -> tr.SnapshotPair | None:
    """The transitions' pair, or None when no snapshot is old enough to compare with."""
    if snapshot_date not in available:
        tr.resolve_pair(available, snapshot_date, days)  # raises, naming the nearest dates
    try:
        return tr.resolve_pair(available, snapshot_date, days)
    except TransitionUsageError:
        return None


def _gather(
    store: TableStore,
    config: Config,
    segments: DataFrame,
    snap: DataFrame,
    snapshot_date: dt.date,
    previous: dt.date | None,
    pair: tr.SnapshotPair | None,
    cap: int,
) -> ReportData:
    earlier = pair.earlier if pair else None
    shown = sorted({d for d in (snapshot_date, previous, earlier) if d is not None})
    spread = agg.spread(snap).first()
    assert spread is not None
    floor = agg.outlier_floor(spread["q1"], spread["q3"])
    above = agg.count_above(snap, floor).first() if floor is not None else None
    clusters = agg.cluster_profile(snap).toPandas()
    attributes = agg.attribute_counts(snap).toPandas()
    scores = {t: _scored(store, config, t, snapshot_date) for t in (CHURN_TABLE, CLV_TABLE)}
    predictions = (
        agg.predictions_by_segment(snap, scores[CHURN_TABLE], scores[CLV_TABLE]).toPandas()
        if any(v is not None for v in scores.values())
        else None
    )
    run = _run(store, config.table_path(), snapshot_date)
    return ReportData(
        table=config.table_path(),
        snapshot=snapshot_date,
        previous=previous,
        earlier=earlier,
        earlier_note=pair.note if pair else None,
        scheme_segments=_scheme(run, config).segments,
        bins=_bins(run, config),
        headline=agg.headline(segments, [d for d in (snapshot_date, previous) if d]).toPandas(),
        sizes=agg.segment_sizes(segments, shown).toPandas(),
        grid=agg.rf_grid(snap).toPandas(),
        histograms=_histograms(snap, spread),
        outlier_floor=floor,
        outliers=_outliers(snap, floor, cap),
        outlier_total=above.asDict() if above is not None else {},
        transitions=tr.transition_matrix(tr.transition_pairs(segments, pair)).toPandas()
        if pair
        else None,
        clusters=clusters if len(clusters) else None,
        attributes=attributes,
        predictions=predictions,
        quarantine=_quarantine(store, config, snapshot_date),
        score_ranges=agg.score_ranges(snap).toPandas(),
        run=run,
    )


def _bins(run: dict[str, Any], config: Config) -> int:
    """The score bins the snapshot was made with, else the configured ones."""
    scoring = run.get("scoring")
    return (
        int(scoring.get("bins") or config.scoring.bins)
        if isinstance(scoring, dict)
        else config.scoring.bins
    )


def _scheme(run: dict[str, Any], config: Config) -> Scheme:
    """The scheme that named the snapshot's segments (its order and colours), else the
    configured one."""
    try:
        return load_scheme(str(run.get("scheme") or config.segments.scheme))
    except SchemeError:
        return load_scheme(config.segments.scheme)


def _outliers(snap: DataFrame, floor: float | None, cap: int) -> Any:
    """The capped outlier list; without spenders an empty frame, no job."""
    if floor is None:
        import pandas as pd

        return pd.DataFrame(columns=agg.OUTLIER_COLUMNS)
    return agg.outliers(snap, floor, cap).toPandas()


def _histograms(snap: DataFrame, spread: Any) -> list[Histogram]:
    specs = [
        ("recency (days)", "recency_days", agg.linear_edges(spread["max_recency"] or 1), False),
        ("frequency (orders)", "frequency", agg.log_edges(spread["max_frequency"] or 1), True),
        ("spend", "monetary", agg.log_edges(spread["max_monetary"] or 1), True),
    ]
    return [
        Histogram(name, edges, agg.histogram(snap, column, edges).toPandas(), log)
        for name, column, edges, log in specs
    ]


def _scored(
    store: TableStore, config: Config, table: str, snapshot_date: dt.date
) -> DataFrame | None:
    """The snapshot's rows of a score table (churn, CLV), or None when it has none."""
    path = config.table_path(table)
    if not store.exists(path):
        return None
    rows = store.read(path).filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
    return rows if rows.limit(1).count() else None


def _quarantine(store: TableStore, config: Config, snapshot_date: dt.date) -> Any:
    path = config.table_path(config.output.quarantine_table)
    if not store.exists(path):
        import pandas as pd

        return pd.DataFrame({"reason": [], "rows": []})
    return agg.quarantine_reasons(store.read(path), snapshot_date).toPandas()


def _run(store: TableStore, path: str, snapshot_date: dt.date) -> dict[str, Any]:
    """The metadata of the newest commit that wrote the snapshot (a backfill's commit lists
    its snapshots)."""
    day = snapshot_date.isoformat()
    for commit in store.history(path):
        meta = run_metadata(commit)
        if meta.get("snapshot_date") == day or day in (meta.get("snapshots") or {}):
            return meta
    return {}
