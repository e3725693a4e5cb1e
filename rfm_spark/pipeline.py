"""The segment job: input -> validation -> daily aggregates -> features -> scores -> segments ->
one Delta commit of the snapshot's partition of ``customer_segments``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark import __version__
from rfm_spark.clustering import (
    ClusterModel,
    TrainResult,
    assign_clusters,
    cluster_profiles,
    load_model,
    save_model,
    train,
)
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError, DataError, InputError, UsageError
from rfm_spark.features import daily_aggregates, rfm_features, rfm_features_by_snapshot
from rfm_spark.inputs import read_customer_attributes, read_transactions
from rfm_spark.io.commits import Txn
from rfm_spark.io.store import TableStore
from rfm_spark.progress import Progress
from rfm_spark.scoring import ScoringInfo, exact_col, score
from rfm_spark.segments import Scheme, assign_segments, load_scheme
from rfm_spark.session import sort_aggregation
from rfm_spark.validation import (
    DUPLICATE,
    QUARANTINE_SCHEMA,
    REASONS,
    by_customer,
    deduplicate,
    observe_rows,
    quarantine_rows,
)

SNAPSHOT_COLUMN = "snapshot_date"

# The customer_segments table (design.md section 9), in column order.
OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("recency_days", T.IntegerType()),
        T.StructField("frequency", T.LongType()),
        T.StructField("monetary", T.DecimalType(18, 2)),
        T.StructField("purchase_days", T.LongType()),
        T.StructField("avg_order_value", T.DecimalType(18, 2)),
        T.StructField("first_purchase_date", T.DateType()),
        T.StructField("last_purchase_date", T.DateType()),
        T.StructField("tenure_days", T.IntegerType()),
        T.StructField("r_score", T.IntegerType()),
        T.StructField("f_score", T.IntegerType()),
        T.StructField("m_score", T.IntegerType()),
        T.StructField("rfm_code", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("cluster_id", T.IntegerType()),
        T.StructField("cluster_name", T.StringType()),
        T.StructField("score_group", T.StringType()),
        T.StructField("flag", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)


@dataclass(frozen=True)
class Reconciliation:
    """Where every input row went: ``input_rows = used + outside_window + quarantined_rows``.

    ``quarantined`` holds the rows per reason (:data:`rfm_spark.validation.ALL_REASONS`),
    only the reasons that occurred.
    """

    input_rows: int
    used: int
    before_window: int
    after_snapshot: int
    quarantined: dict[str, int]

    @property
    def outside_window(self) -> int:
        return self.before_window + self.after_snapshot

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        return self.input_rows == self.used + self.outside_window + self.quarantined_rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_rows": self.input_rows,
            "used": self.used,
            "before_window": self.before_window,
            "after_snapshot": self.after_snapshot,
            "quarantined": dict(self.quarantined),
        }

    def line(self) -> str:
        """``input rows N = used + outside the window + quarantined {reason: n}``."""
        q = self.quarantined_rows
        return (
            f"input rows {self.input_rows:,} = used {self.used:,} + outside the window "
            f"{self.outside_window:,} + quarantined {q:,}"
            + (f" {dict(sorted(self.quarantined.items()))}" if q else "")
        )


@dataclass(frozen=True)
class SegmentSummaryRow:
    segment: str
    customers: int
    share: float
    revenue: float
    revenue_share: float


@dataclass(frozen=True)
class SegmentResult:
    """What a segment run did."""

    run_id: str
    snapshot_date: dt.date
    table_path: str
    version: int
    backend: str
    customers: int
    reconciliation: Reconciliation
    scoring: ScoringInfo
    scheme: str
    summary: list[SegmentSummaryRow]
    timings: dict[str, float] = field(default_factory=dict)
    quarantine_path: str | None = None
    quarantine_version: int | None = None
    replayed: bool = False  # an earlier attempt with the same idempotency key committed it


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20261123T093000Z-1a2b3c4d``: sortable by start time, unique."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _reconciliation(obs: Observation, dups: int) -> Reconciliation:
    """The reconciliation of a run from the observed row counts (after the first action) and
    the extra copies of rows in the window (quarantined as duplicates)."""
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


def _valid_rows(
    spark: SparkSession, config: Config, *, start: dt.date, end: dt.date, now: dt.datetime
) -> tuple[DataFrame, DataFrame, Observation, Observation | None]:
    """(validated input, valid rows of the window ready for daily aggregates, row counts,
    duplicate counts or None when duplicates are kept)."""
    validated = read_transactions(spark, config.input, now=now)
    kept, obs = observe_rows(validated, start=start, end=end)
    if config.validation.duplicates == "keep":
        return validated, by_customer(kept), obs, None
    distinct, dups = deduplicate(kept)
    return validated, distinct, obs, dups


def _check_not_empty(config: Config, recon: Reconciliation) -> None:
    if recon.input_rows == 0:
        raise DataError(
            f"input {config.input.path!r} has no rows; check --input (and the file format: "
            f"{config.input.format})"
        )


def _write_quarantine(
    store: TableStore,
    config: Config,
    validated: DataFrame,
    *,
    recon: Reconciliation,
    window: tuple[dt.date, dt.date],
    snapshot_date: dt.date,
    run_id: str,
    now: dt.datetime,
    progress: Progress,
) -> tuple[str | None, int | None]:
    """Replace the ``snapshot_date`` partition of the quarantine table with this run's bad rows,
    then fail the run when too many rows were bad.

    Returns:
        (path, version) of the quarantine commit, or (None, None) when there was nothing to
        write (no bad rows and no quarantine table yet).
    """
    path = config.table_path(config.output.quarantine_table)
    total = recon.quarantined_rows
    version = None
    if total or store.exists(path):  # an existing partition is emptied by a clean rerun
        rows = (
            quarantine_rows(
                validated,
                window=window,
                duplicates=bool(recon.quarantined.get(DUPLICATE)),
                snapshot_date=snapshot_date,
                run_id=run_id,
                source=str(config.input.path),
                now=now,
            )
            if total
            else validated.sparkSession.createDataFrame([], QUARANTINE_SCHEMA)
        )
        with progress.step(f"writing {total:,} quarantined row(s) to {path}"):
            version = store.write_partition(
                rows,
                path,
                partition_column=SNAPSHOT_COLUMN,
                partition_value=snapshot_date,
                metadata={
                    "run_id": run_id,
                    "snapshot_date": snapshot_date.isoformat(),
                    "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
                    "rfm_spark_version": __version__,
                },
                table_properties=config.history.table_properties(),
                txn=_txn(config),
            )
    limit = config.validation.max_quarantine_share
    share = total / recon.input_rows if recon.input_rows else 0.0
    if share > limit:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(recon.quarantined.items()))
        raise DataError(
            f"{total:,} of {recon.input_rows:,} input rows ({share:.2%}) are bad ({reasons}), "
            f"more than validation.max_quarantine_share ({limit:.2%}); nothing was committed "
            f"to {config.output.table}. The rows are in {path} (run_id {run_id}). Fix the input "
            "or raise validation.max_quarantine_share"
        )
    return (path if version is not None else None), version


def _to_output(
    df: DataFrame, *, snapshot_date: dt.date | None, run_id: str, partition_by: Sequence[str]
) -> DataFrame:
    """Rows in the ``customer_segments`` schema; ``snapshot_date`` None keeps the column of
    ``df`` (backfills)."""
    group = (
        F.concat_ws(
            "|", *[F.coalesce(exact_col(c).cast("string"), F.lit("(null)")) for c in partition_by]
        )
        if partition_by
        else F.lit(None)
    )
    extra = {
        "snapshot_date": F.col(SNAPSHOT_COLUMN) if snapshot_date is None else F.lit(snapshot_date),
        "cluster_id": F.lit(None),
        "cluster_name": F.lit(None),
        "score_group": group,
        "run_id": F.lit(run_id),
    }
    return df.select(
        *[
            (extra[f.name] if f.name in extra else exact_col(f.name)).cast(f.dataType).alias(f.name)
            for f in OUTPUT_SCHEMA.fields
        ]
    )


def summarize(segments: DataFrame, scheme: Scheme | None = None) -> list[SegmentSummaryRow]:
    """Customers, share and revenue share per segment (from the table as committed)."""
    rows = (
        segments.groupBy("segment")
        .agg(F.count(F.lit(1)).alias("customers"), F.sum("monetary").alias("revenue"))
        .collect()
    )
    total = sum(r["customers"] for r in rows) or 1
    revenue = sum(float(r["revenue"] or 0) for r in rows)
    order = {name: i for i, name in enumerate(scheme.segments)} if scheme else {}
    out = [
        SegmentSummaryRow(
            segment=r["segment"],
            customers=int(r["customers"]),
            share=r["customers"] / total,
            revenue=float(r["revenue"] or 0),
            revenue_share=(float(r["revenue"] or 0) / revenue) if revenue else 0.0,
        )
        for r in rows
    ]
    return sorted(out, key=lambda s: (order.get(s.segment, len(order)), s.segment or ""))


def _check_scheme(config: Config) -> Scheme:
    scheme = load_scheme(config.segments.scheme)
    if scheme.bins != config.scoring.bins:
        raise ConfigError(
            f"scheme {scheme.name!r} is defined for scores 1..{scheme.bins} but scoring.bins is "
            f"{config.scoring.bins}; use --bins {scheme.bins} or a scheme for "
            f"{config.scoring.bins} bins"
        )
    return scheme


def _ordered(spark: SparkSession, config: Config) -> bool:
    """Whether the valid rows come sorted by customer, day and order id within their
    partitions (the exact-duplicate grouping sorts them when the session allows it)."""
    return config.validation.duplicates == "quarantine" and sort_aggregation(spark)


def _features_for(
    spark: SparkSession, config: Config, rows: DataFrame, snapshot_date: dt.date
) -> DataFrame:
    """Cached features of one snapshot from the valid rows of its window (with the
    ``partition_by`` attributes joined)."""
    ordered = _ordered(spark, config)
    features = rfm_features(
        daily_aggregates(rows, ordered=ordered),
        snapshot_date=snapshot_date,
        lookback_days=config.features.lookback_days,
        ordered=ordered,
    )
    groups = list(config.scoring.partition_by)
    if groups:
        attrs = read_customer_attributes(spark, config.input, groups)
        features = features.join(attrs, on="customer_id", how="left")
    return features.persist(StorageLevel.MEMORY_AND_DISK)


def _segments_of(
    features: DataFrame,
    config: Config,
    scheme: Scheme,
    snapshot_date: dt.date,
    run_id: str,
    model: ClusterModel | None = None,
    *,
    rows: int | None = None,
) -> tuple[DataFrame, ScoringInfo]:
    """Score, name and cluster the (cached, non-empty) features (``rows`` of them): rows in
    the ``customer_segments`` schema (cluster columns null without a model)."""
    scored, info = score(features, config.scoring, rows=rows)
    segmented = assign_segments(scored, scheme=scheme)
    out = _to_output(
        segmented,
        snapshot_date=snapshot_date,
        run_id=run_id,
        partition_by=list(config.scoring.partition_by),
    )
    if model is not None:
        out = assign_clusters(out, model).select(*OUTPUT_SCHEMA.fieldNames())
    return out, info


def _current_model(spark: SparkSession, config: Config, progress: Progress) -> ClusterModel | None:
    model = load_model(spark, config.warehouse)
    if model is None:
        progress.info(
            "no cluster model yet: cluster_id and cluster_name stay null "
            "(run 'rfm-spark train' to add predictive segments)"
        )
    else:
        progress.info(f"assigning clusters with model v{model.version} (k={model.k})")
    return model


def _no_customers(config: Config, start: dt.date, snapshot_date: dt.date) -> InputError:
    return InputError(
        f"no usable transactions between {start} and {snapshot_date} (exclusive) in "
        f"{config.input.path!r}; check --snapshot-date and --lookback-days"
    )


def _metadata(
    *,
    run_id: str,
    snapshot_date: dt.date,
    config: Config,
    scheme: Scheme,
    info: ScoringInfo,
    recon: Reconciliation,
    output_rows: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    return {
        "run_id": run_id,
        "snapshot_date": snapshot_date.isoformat(),
        "config_hash": config.fingerprint(),
        "scheme": scheme.name,
        "scoring_method": info.method,
        "scoring": json.dumps(info.as_dict(), sort_keys=True),
        "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
        "input_rows": str(recon.input_rows),
        "output_rows": str(output_rows),
        "rfm_spark_version": __version__,
        # how the features were made: "full" recomputes them from the input rows
        "made_by": "full",
        **(extra or {}),
    }


def _model_meta(model: ClusterModel | None) -> dict[str, str]:
    return {"cluster_model_version": str(model.version)} if model is not None else {}


def _summary_of(
    store: TableStore, path: str, version: int, snapshot_date: dt.date, scheme: Scheme
) -> list[SegmentSummaryRow]:
    written = store.read(path, version=version).filter(
        F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date)
    )
    return summarize(written, scheme)


def run_segment(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> SegmentResult:
    """Segment all customers as of ``snapshot_date`` and commit the snapshot's partition.

    A rerun of the same date replaces that partition in one atomic commit.
    """
    from rfm_spark.io.store import open_store

    progress = progress or Progress("segment")
    run_id = run_id or new_run_id()
    scheme = _check_scheme(config)
    spark.conf.set("spark.sql.session.timeZone", config.features.time_zone)
    store = open_store(spark, config.output.backend)
    path = config.table_path()
    txn = _txn(config)
    done = store.txn_version(path, txn) if txn is not None else None
    if done is not None:
        progress.info(f"idempotency key {config.output.idempotency_key!r} already committed")
        return _replayed(store, path, done, snapshot_date, scheme)
    progress.info(
        f"run {run_id}: snapshot {snapshot_date}, scoring {config.scoring.method}, "
        f"scheme {scheme.name}"
    )
    model = _current_model(spark, config, progress)
    start = snapshot_date - dt.timedelta(days=config.features.lookback_days)
    now = dt.datetime.now(dt.timezone.utc)
    validated, rows, obs, dups = _valid_rows(spark, config, start=start, end=snapshot_date, now=now)
    features = _features_for(spark, config, rows, snapshot_date)
    try:
        with progress.step("reading and validating transactions, computing features"):
            customers = features.count()
        recon = _reconciliation(obs, int((dups.get.get("duplicates") if dups else 0) or 0))
        _report(progress, recon, customers)
        _check_not_empty(config, recon)
        quarantine_path, quarantine_version = _write_quarantine(
            store,
            config,
            validated,
            recon=recon,
            window=(start, snapshot_date),
            snapshot_date=snapshot_date,
            run_id=run_id,
            now=now,
            progress=progress,
        )
        if customers == 0:
            raise _no_customers(config, start, snapshot_date)
        with progress.step(f"planning {config.scoring.method} scores"):
            out, info = _segments_of(
                features, config, scheme, snapshot_date, run_id, model, rows=customers
            )
        metadata = _metadata(
            run_id=run_id,
            snapshot_date=snapshot_date,
            config=config,
            scheme=scheme,
            info=info,
            recon=recon,
            output_rows=customers,
            extra=_model_meta(model),
        )
        with progress.step(f"scoring, segmenting and committing to {path} ({store.backend})"):
            version = store.write_partition(
                out,
                path,
                partition_column=SNAPSHOT_COLUMN,
                partition_value=snapshot_date,
                metadata=metadata,
                table_properties=config.history.table_properties(),
                txn=txn,
            )
    finally:
        features.unpersist()
    with progress.step("summarising the committed snapshot"):
        summary = _summary_of(store, path, version, snapshot_date, scheme)
    return SegmentResult(
        run_id=run_id,
        snapshot_date=snapshot_date,
        table_path=path,
        version=version,
        backend=store.backend,
        customers=sum(s.customers for s in summary),
        reconciliation=recon,
        scoring=info,
        scheme=scheme.name,
        summary=summary,
        timings=dict(progress.timings),
        quarantine_path=quarantine_path,
        quarantine_version=quarantine_version,
    )


def _txn(config: Config, index: int = 0) -> Txn | None:
    """The idempotent-write identity of a run's ``index``-th commit to a table, when the run
    has an idempotency key (an orchestrator's run id: the same for every retry of one run)."""
    key = config.output.idempotency_key
    return Txn(app_id=f"rfm-spark:{key}", version=index) if key else None


def _replayed(
    store: TableStore, path: str, version: int, snapshot_date: dt.date, scheme: Scheme
) -> SegmentResult:
    """The result of the earlier attempt that committed ``version`` (nothing is recomputed)."""
    from rfm_spark.history import run_metadata

    commit = next(c for c in store.history(path) if c["version"] == version)
    meta = run_metadata(commit)
    scoring = meta.get("scoring") or {}
    summary = _summary_of(store, path, version, snapshot_date, scheme)
    return SegmentResult(
        run_id=str(meta.get("run_id", "")),
        snapshot_date=snapshot_date,
        table_path=path,
        version=version,
        backend=store.backend,
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
        scheme=str(meta.get("scheme", scheme.name)),
        summary=summary,
        replayed=True,
    )


def _report(progress: Progress, recon: Reconciliation, customers: int) -> None:
    progress.info(f"{recon.line()}; {customers:,} customers")


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


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did: one :class:`SegmentResult` per snapshot."""

    run_id: str
    table_path: str
    versions: list[int]
    snapshots: list[SegmentResult]
    timings: dict[str, float] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None  # the whole span, read once
    quarantine_path: str | None = None
    quarantine_version: int | None = None


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

    The transactions are read once into daily aggregates (cached); the features of every
    snapshot come from one aggregation over them, and one scoring pass scores every snapshot on
    its own (the snapshot is a scoring group, so each snapshot's scores equal those of a
    ``segment`` run for that date). The result is cached and each date committed from it as its
    own version (history stays usable if a later commit fails), or all in one commit with
    ``single_commit``.
    """
    from rfm_spark.io.store import open_store

    if not dates:
        raise ConfigError("backfill needs at least one snapshot date")
    progress = progress or Progress("backfill")
    run_id = run_id or new_run_id()
    scheme = _check_scheme(config)
    spark.conf.set("spark.sql.session.timeZone", config.features.time_zone)
    store = open_store(spark, config.output.backend)
    path = config.table_path()
    lookback = config.features.lookback_days
    dates = sorted(set(dates))
    groups = list(config.scoring.partition_by)
    span_start, span_end = dates[0] - dt.timedelta(days=lookback), dates[-1]
    progress.info(
        f"run {run_id}: {len(dates)} snapshots {dates[0]} .. {dates[-1]}, "
        f"scoring {config.scoring.method}, scheme {scheme.name}"
    )
    model = _current_model(spark, config, progress)
    now = dt.datetime.now(dt.timezone.utc)
    validated, rows, obs, _ = _valid_rows(spark, config, start=span_start, end=span_end, now=now)
    daily = daily_aggregates(rows, ordered=_ordered(spark, config)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    features: DataFrame | None = None
    out: DataFrame | None = None
    try:
        with progress.step("reading and validating transactions once into daily aggregates"):
            windows, span_duplicates = _rows_per_window(daily, dates, lookback)
        span = _reconciliation(obs, span_duplicates)
        _check_not_empty(config, span)
        quarantine_path, quarantine_version = _write_quarantine(
            store,
            config,
            validated,
            recon=span,
            window=(span_start, span_end),
            snapshot_date=dates[-1],
            run_id=run_id,
            now=now,
            progress=progress,
        )
        features = rfm_features_by_snapshot(daily, snapshot_dates=dates, lookback_days=lookback)
        if groups:
            attrs = read_customer_attributes(spark, config.input, groups)
            features = features.join(attrs, on="customer_id", how="left")
        features = features.persist(StorageLevel.MEMORY_AND_DISK)
        with progress.step(f"features of {len(dates)} snapshots in one aggregation"):
            counts = {
                r[SNAPSHOT_COLUMN]: int(r["count"])
                for r in features.groupBy(SNAPSHOT_COLUMN).count().collect()
            }
        empty = [d for d in dates if not counts.get(d)]
        if empty:
            raise _no_customers(config, empty[0] - dt.timedelta(days=lookback), empty[0])
        by_snapshot = config.scoring.model_copy(update={"partition_by": [SNAPSHOT_COLUMN, *groups]})
        with progress.step(f"planning {config.scoring.method} scores of every snapshot"):
            scored, info = score(features, by_snapshot, rows=sum(counts.values()))
        segmented = assign_segments(scored, scheme=scheme)
        out = _to_output(segmented, snapshot_date=None, run_id=run_id, partition_by=groups)
        if model is not None:
            out = assign_clusters(out, model).select(*OUTPUT_SCHEMA.fieldNames())
        out = out.persist(StorageLevel.MEMORY_AND_DISK)
        with progress.step("scoring and segmenting every snapshot"):
            out.count()

        results: list[SegmentResult] = []
        metas: dict[dt.date, dict[str, str]] = {}
        for snap in dates:
            w = windows[snap]
            bad = {r: n for r, n in span.quarantined.items() if r != DUPLICATE}
            recon = Reconciliation(
                input_rows=span.input_rows,
                used=w.used,
                before_window=span.before_window + w.before,
                after_snapshot=span.after_snapshot + w.after,
                quarantined={**bad, **({DUPLICATE: w.duplicates} if w.duplicates else {})},
            )
            snap_info = _info_of_snapshot(info, snap, groups)
            metas[snap] = _metadata(
                run_id=run_id,
                snapshot_date=snap,
                config=config,
                scheme=scheme,
                info=snap_info,
                recon=recon,
                output_rows=counts[snap],
                extra={"backfill": f"{dates[0]}..{dates[-1]}", **_model_meta(model)},
            )
            results.append(
                SegmentResult(
                    run_id=run_id,
                    snapshot_date=snap,
                    table_path=path,
                    version=-1,
                    backend=store.backend,
                    customers=counts[snap],
                    reconciliation=recon,
                    scoring=snap_info,
                    scheme=scheme.name,
                    summary=[],
                    quarantine_path=quarantine_path,
                    quarantine_version=quarantine_version,
                )
            )
        versions: list[int] = []
        if single_commit:
            with progress.step(f"committing {len(dates)} snapshots in one commit"):
                version = store.write_partitions(
                    out,
                    path,
                    partition_column=SNAPSHOT_COLUMN,
                    partition_values=dates,
                    metadata={
                        **{k: v for k, v in metas[dates[-1]].items() if k not in _PER_SNAPSHOT},
                        "snapshot_date": f"{dates[0]}..{dates[-1]}",
                        "snapshots": json.dumps({d.isoformat(): counts[d] for d in dates}),
                        "reconciliation": json.dumps(
                            {
                                r.snapshot_date.isoformat(): r.reconciliation.as_dict()
                                for r in results
                            }
                        ),
                        "output_rows": str(sum(counts.values())),
                    },
                    table_properties=config.history.table_properties(),
                    txn=_txn(config),
                )
            versions = [version]
        else:
            for i, snap in enumerate(dates):
                with progress.step(f"snapshot {snap}: commit"):
                    versions.append(
                        store.write_partition(
                            out.filter(F.col(SNAPSHOT_COLUMN) == F.lit(snap)),
                            path,
                            partition_column=SNAPSHOT_COLUMN,
                            partition_value=snap,
                            metadata=metas[snap],
                            table_properties=config.history.table_properties(),
                            txn=_txn(config, i),
                        )
                    )
        results = [
            _replace_version(r, versions[0] if single_commit else versions[i])
            for i, r in enumerate(results)
        ]
    finally:
        for cached in (out, features, daily):
            if cached is not None:
                cached.unpersist()
    return BackfillResult(
        run_id=run_id,
        table_path=path,
        versions=versions,
        snapshots=results,
        timings=dict(progress.timings),
        reconciliation=span,
        quarantine_path=quarantine_path,
        quarantine_version=quarantine_version,
    )


# metadata keys that describe one snapshot, left out of a multi-snapshot commit
_PER_SNAPSHOT = ("scoring",)


def _info_of_snapshot(info: ScoringInfo, snap: dt.date, groups: Sequence[str]) -> ScoringInfo:
    """The scoring info of one snapshot of a backfill (groups keyed ``"<date>|<group>"``)."""
    prefix = snap.isoformat()

    def pick(per_axis: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for axis, per_group in per_axis.items():
            out[axis] = {}
            for key, value in per_group.items():
                if key == "" or key == prefix or key.startswith(prefix + "|"):
                    out[axis][key[len(prefix) + 1 :] if key.startswith(prefix) else key] = value
        return out

    return replace(
        info,
        partition_by=tuple(groups),
        cut_points=pick(info.cut_points),
        collapsed=pick(info.collapsed),
    )


def _replace_version(result: SegmentResult, version: int) -> SegmentResult:
    return replace(result, version=version)


@dataclass(frozen=True)
class _WindowRows:
    """Valid input rows of a backfill span seen from one snapshot."""

    used: int
    duplicates: int  # extra copies of rows in the window (quarantined)
    before: int  # before the window (copies included)
    after: int  # on or after the snapshot (copies included)


def _rows_per_window(
    daily: DataFrame, dates: Sequence[dt.date], lookback: int
) -> tuple[dict[dt.date, _WindowRows], int]:
    """Rows per snapshot window and the extra copies in the whole span, in one aggregation
    over the cached daily aggregates."""
    day, every = F.col("order_date"), F.col("lines") + F.col("duplicates")
    aggs = [F.sum("duplicates").alias("span_duplicates")]
    for i, snap in enumerate(dates):
        inside = (day >= F.lit(snap - dt.timedelta(days=lookback))) & (day < F.lit(snap))
        aggs += [
            F.sum(F.when(inside, F.col("lines"))).alias(f"u{i}"),
            F.sum(F.when(inside, F.col("duplicates"))).alias(f"d{i}"),
            F.sum(F.when(day < F.lit(snap - dt.timedelta(days=lookback)), every)).alias(f"b{i}"),
            F.sum(F.when(day >= F.lit(snap), every)).alias(f"a{i}"),
        ]
    row = daily.agg(*aggs).collect()[0]
    windows = {
        snap: _WindowRows(*(int(row[f"{k}{i}"] or 0) for k in "udba"))
        for i, snap in enumerate(dates)
    }
    return windows, int(row["span_duplicates"] or 0)


@dataclass(frozen=True)
class TrainRunResult:
    """What ``rfm-spark train`` did: the training result, the saved model, the profiles."""

    result: TrainResult
    model: ClusterModel
    profiles: list[dict[str, Any]]
    profiles_version: int


def run_train(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    progress: Progress | None = None,
) -> TrainRunResult:
    """Train predictive segments on the features of a committed snapshot and save the model.

    The features come from ``customer_segments`` at ``snapshot_date`` (run ``segment`` first).
    A previous model, when there is one, anchors the cluster ids (Hungarian matching). The
    ``cluster_profiles`` table gets the new model's profiles as partition ``model_version``.
    """
    from rfm_spark.io.store import open_store

    progress = progress or Progress("train")
    settings = config.clustering
    store = open_store(spark, config.output.backend)
    path = config.table_path()
    if not store.exists(path):
        raise UsageError(
            f"no table at {path}; run 'rfm-spark segment --snapshot-date {snapshot_date}' first"
        )
    features = (
        store.read(path)
        .filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        if features.limit(1).count() == 0:
            raise UsageError(
                f"snapshot {snapshot_date} is not in {path}; run 'rfm-spark segment "
                f"--snapshot-date {snapshot_date}' first (see 'rfm-spark history')"
            )
        previous = load_model(spark, config.warehouse)
        ks = f"k={settings.k}" if settings.k else f"k in {settings.k_min}..{settings.k_max}"
        with progress.step(f"training {settings.algorithm} ({ks}) on snapshot {snapshot_date}"):
            result = train(
                features,
                snapshot_date=snapshot_date,
                k=settings.k,
                k_min=settings.k_min,
                k_max=settings.k_max,
                sample_fraction=settings.sample_fraction,
                max_sample_rows=settings.max_sample_rows,
                seed=settings.seed,
                algorithm=settings.algorithm,
                previous=previous,
            )
        with progress.step("saving the model and its cluster profiles"):
            model = save_model(result, config.warehouse, spark=spark)
            profiles = cluster_profiles(assign_clusters(features, model), model)
            version = store.write_partition(
                profiles,
                config.table_path("cluster_profiles"),
                partition_column="model_version",
                partition_value=str(model.version),
                metadata={
                    "model_version": str(model.version),
                    "snapshot_date": snapshot_date.isoformat(),
                    "rfm_spark_version": __version__,
                },
            )
            rows = [r.asDict() for r in profiles.orderBy("cluster_id").collect()]
    finally:
        features.unpersist()
    return TrainRunResult(result=result, model=model, profiles=rows, profiles_version=version)
