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
from rfm_spark.errors import ConfigError, InputError, UsageError
from rfm_spark.features import (
    REJECT_REASONS,
    daily_aggregates,
    rfm_features,
    rfm_features_by_snapshot,
    with_reject_reason,
)
from rfm_spark.inputs import read_customer_attributes, read_transactions
from rfm_spark.progress import Progress
from rfm_spark.scoring import ScoringInfo, score
from rfm_spark.segments import Scheme, assign_segments, load_scheme

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
    """Where every input row went: ``input_rows = used + outside_window + sum(rejected)``."""

    input_rows: int
    used: int
    before_window: int
    after_snapshot: int
    rejected: dict[str, int]

    @property
    def outside_window(self) -> int:
        return self.before_window + self.after_snapshot

    @property
    def balanced(self) -> bool:
        return self.input_rows == self.used + self.outside_window + sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_rows": self.input_rows,
            "used": self.used,
            "before_window": self.before_window,
            "after_snapshot": self.after_snapshot,
            "rejected": dict(self.rejected),
        }


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


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20261123T093000Z-1a2b3c4d``: sortable by start time, unique."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def observe_reconciliation(
    transactions: DataFrame, *, start: dt.date, end: dt.date
) -> tuple[DataFrame, Observation]:
    """Attach row-count metrics (filled by the first action) and keep only usable rows in the window.

    Input: canonical transactions with ``reject_reason``. Output: the rows with no reject reason
    and ``start <= day < end``, without ``reject_reason``.
    """
    obs = Observation("reconciliation")
    valid = F.col("reject_reason").isNull()
    day = F.to_date("order_ts")
    observed = transactions.observe(
        obs,
        F.count(F.lit(1)).alias("input_rows"),
        F.count(F.when(valid & (day >= F.lit(start)) & (day < F.lit(end)), 1)).alias("used"),
        F.count(F.when(valid & (day < F.lit(start)), 1)).alias("before_window"),
        F.count(F.when(valid & (day >= F.lit(end)), 1)).alias("after_snapshot"),
        *[
            F.count(F.when(F.col("reject_reason") == r, 1)).alias(f"rejected_{r}")
            for r in REJECT_REASONS
        ],
    )
    kept = observed.filter(valid & (day >= F.lit(start)) & (day < F.lit(end))).drop("reject_reason")
    return kept, obs


def _reconciliation(obs: Observation) -> Reconciliation:
    m = obs.get
    return Reconciliation(
        input_rows=int(m["input_rows"]),
        used=int(m["used"]),
        before_window=int(m["before_window"]),
        after_snapshot=int(m["after_snapshot"]),
        rejected={r: int(m[f"rejected_{r}"]) for r in REJECT_REASONS if int(m[f"rejected_{r}"])},
    )


def _to_output(
    df: DataFrame, *, snapshot_date: dt.date | None, run_id: str, partition_by: Sequence[str]
) -> DataFrame:
    """Rows in the ``customer_segments`` schema; ``snapshot_date`` None keeps the column of
    ``df`` (backfills)."""
    group = (
        F.concat_ws(
            "|", *[F.coalesce(F.col(c).cast("string"), F.lit("(null)")) for c in partition_by]
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
            (extra[f.name] if f.name in extra else F.col(f.name)).cast(f.dataType).alias(f.name)
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


def _features_for(
    spark: SparkSession, config: Config, daily: DataFrame, snapshot_date: dt.date
) -> DataFrame:
    """Cached features of one snapshot (with the ``partition_by`` attributes joined)."""
    features = rfm_features(
        daily, snapshot_date=snapshot_date, lookback_days=config.features.lookback_days
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
) -> tuple[DataFrame, ScoringInfo]:
    """Score, name and cluster the (cached, non-empty) features: rows in the
    ``customer_segments`` schema (cluster columns null without a model)."""
    scored, info = score(features, config.scoring)
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
        **(extra or {}),
    }


def _model_meta(model: ClusterModel | None) -> dict[str, str]:
    return {"cluster_model_version": str(model.version)} if model is not None else {}


def _summary_of(
    store: Any, path: str, version: int, snapshot_date: dt.date, scheme: Scheme
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
    from rfm_spark.io.delta import open_store

    progress = progress or Progress("segment")
    run_id = run_id or new_run_id()
    scheme = _check_scheme(config)
    spark.conf.set("spark.sql.session.timeZone", config.features.time_zone)
    store = open_store(spark, config.output.backend)
    path = config.table_path()
    progress.info(
        f"run {run_id}: snapshot {snapshot_date}, scoring {config.scoring.method}, "
        f"scheme {scheme.name}"
    )
    model = _current_model(spark, config, progress)
    start = snapshot_date - dt.timedelta(days=config.features.lookback_days)
    tx = read_transactions(spark, config.input).transform(with_reject_reason)
    kept, obs = observe_reconciliation(tx, start=start, end=snapshot_date)
    features = _features_for(spark, config, daily_aggregates(kept), snapshot_date)
    try:
        with progress.step("reading transactions and computing features"):
            customers = features.count()
        recon = _reconciliation(obs)
        _report(progress, recon, customers)
        if customers == 0:
            raise _no_customers(config, start, snapshot_date)
        with progress.step(f"planning {config.scoring.method} scores"):
            out, info = _segments_of(features, config, scheme, snapshot_date, run_id, model)
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
    )


def _report(progress: Progress, recon: Reconciliation, customers: int) -> None:
    rejected = sum(recon.rejected.values())
    progress.info(
        f"{recon.input_rows:,} input rows: {recon.used:,} in the window, "
        f"{recon.outside_window:,} outside it, {rejected:,} rejected"
        + (f" {recon.rejected}" if rejected else "")
        + f"; {customers:,} customers"
    )


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
    from rfm_spark.io.delta import open_store

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
    tx = read_transactions(spark, config.input).transform(with_reject_reason)
    kept, obs = observe_reconciliation(tx, start=span_start, end=span_end)
    daily = daily_aggregates(kept).persist(StorageLevel.MEMORY_AND_DISK)
    features: DataFrame | None = None
    out: DataFrame | None = None
    try:
        with progress.step("reading transactions once into daily aggregates"):
            lines = _lines_per_window(daily, dates, lookback)
        span = _reconciliation(obs)
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
            scored, info = score(features, by_snapshot)
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
            used, before, after = lines[snap]
            recon = Reconciliation(
                input_rows=span.input_rows,
                used=used,
                before_window=span.before_window + before,
                after_snapshot=span.after_snapshot + after,
                rejected=span.rejected,
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
                )
            versions = [version]
        else:
            for snap in dates:
                with progress.step(f"snapshot {snap}: commit"):
                    versions.append(
                        store.write_partition(
                            out.filter(F.col(SNAPSHOT_COLUMN) == F.lit(snap)),
                            path,
                            partition_column=SNAPSHOT_COLUMN,
                            partition_value=snap,
                            metadata=metas[snap],
                            table_properties=config.history.table_properties(),
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


def _lines_per_window(
    daily: DataFrame, dates: Sequence[dt.date], lookback: int
) -> dict[dt.date, tuple[int, int, int]]:
    """Valid input rows (used, before the window, on/after the snapshot) per snapshot, in one
    aggregation over the cached daily aggregates."""
    aggs = []
    for i, snap in enumerate(dates):
        start = snap - dt.timedelta(days=lookback)
        day = F.col("order_date")
        aggs += [
            F.sum(F.when((day >= F.lit(start)) & (day < F.lit(snap)), F.col("lines"))).alias(
                f"u{i}"
            ),
            F.sum(F.when(day < F.lit(start), F.col("lines"))).alias(f"b{i}"),
            F.sum(F.when(day >= F.lit(snap), F.col("lines"))).alias(f"a{i}"),
        ]
    row = daily.agg(*aggs).collect()[0]
    return {
        snap: (int(row[f"u{i}"] or 0), int(row[f"b{i}"] or 0), int(row[f"a{i}"] or 0))
        for i, snap in enumerate(dates)
    }


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
    from rfm_spark.io.delta import open_store

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
