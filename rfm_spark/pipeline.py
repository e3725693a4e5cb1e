"""The segment job: input -> validation -> daily aggregates -> features -> scores -> segments ->
one Delta commit of the snapshot's partition of ``customer_segments``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark import __version__
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError, InputError
from rfm_spark.features import REJECT_REASONS, daily_aggregates, rfm_features, with_reject_reason
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
        *[F.count(F.when(F.col("reject_reason") == r, 1)).alias(f"rejected_{r}") for r in REJECT_REASONS],
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


def _to_output(df: DataFrame, *, snapshot_date: dt.date, run_id: str, partition_by: Sequence[str]) -> DataFrame:
    group = (
        F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("(null)")) for c in partition_by])
        if partition_by
        else F.lit(None)
    )
    extra = {
        "snapshot_date": F.lit(snapshot_date),
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


def build_segments(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    run_id: str,
    scheme: Scheme,
    progress: Progress,
) -> tuple[DataFrame, DataFrame, Reconciliation, ScoringInfo]:
    """Compute the snapshot's segments (lazy output) and return what was used.

    Returns:
        (output rows in the ``customer_segments`` schema, the cached features to unpersist,
        the reconciliation, the scoring info)
    """
    lookback = config.features.lookback_days
    start = snapshot_date - dt.timedelta(days=lookback)
    tx = read_transactions(spark, config.input).transform(with_reject_reason)
    kept, obs = observe_reconciliation(tx, start=start, end=snapshot_date)
    daily = daily_aggregates(kept)
    features = rfm_features(daily, snapshot_date=snapshot_date, lookback_days=lookback)
    groups = list(config.scoring.partition_by)
    if groups:
        attrs = read_customer_attributes(spark, config.input, groups)
        features = features.join(attrs, on="customer_id", how="left")
    features = features.persist(StorageLevel.MEMORY_AND_DISK)
    with progress.step("reading transactions and computing features"):
        customers = features.count()
    recon = _reconciliation(obs)
    progress.info(
        f"{recon.input_rows:,} input rows: {recon.used:,} in the window, "
        f"{recon.outside_window:,} outside it, {sum(recon.rejected.values()):,} rejected "
        f"{recon.rejected or ''}; {customers:,} customers"
    )
    if customers == 0:
        features.unpersist()
        raise InputError(
            f"no usable transactions between {start} and {snapshot_date} (exclusive) in "
            f"{config.input.path!r}; check --snapshot-date and --lookback-days"
        )
    with progress.step(f"planning {config.scoring.method} scores"):
        scored, info = score(features, config.scoring)
    segmented = assign_segments(scored, scheme=scheme)
    out = _to_output(segmented, snapshot_date=snapshot_date, run_id=run_id, partition_by=groups)
    return out, features, recon, info


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
    scheme = load_scheme(config.segments.scheme)
    if scheme.bins != config.scoring.bins:
        raise ConfigError(
            f"scheme {scheme.name!r} is defined for scores 1..{scheme.bins} but scoring.bins is "
            f"{config.scoring.bins}; use --bins {scheme.bins} or a scheme for {config.scoring.bins} bins"
        )
    spark.conf.set("spark.sql.session.timeZone", config.features.time_zone)
    store = open_store(spark, config.output.backend)
    path = config.table_path()
    progress.info(f"run {run_id}: snapshot {snapshot_date}, scoring {config.scoring.method}, scheme {scheme.name}")

    out, features, recon, info = build_segments(
        spark, config, snapshot_date, run_id=run_id, scheme=scheme, progress=progress
    )
    metadata = {
        "run_id": run_id,
        "snapshot_date": snapshot_date.isoformat(),
        "config_hash": config.fingerprint(),
        "scheme": scheme.name,
        "scoring_method": info.method,
        "scoring": json.dumps(info.as_dict(), sort_keys=True),
        "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
        "input_rows": str(recon.input_rows),
        "output_rows": str(features.count()),
        "rfm_spark_version": __version__,
    }
    try:
        with progress.step(f"scoring, segmenting and committing to {path} ({store.backend})"):
            version = store.write_partition(
                out,
                path,
                partition_column=SNAPSHOT_COLUMN,
                partition_value=snapshot_date,
                metadata=metadata,
            )
    finally:
        features.unpersist()
    with progress.step("summarising the committed snapshot"):
        written = store.read(path, version=version).filter(F.col(SNAPSHOT_COLUMN) == F.lit(snapshot_date))
        summary = summarize(written, scheme)
    customers = sum(s.customers for s in summary)
    return SegmentResult(
        run_id=run_id,
        snapshot_date=snapshot_date,
        table_path=path,
        version=version,
        backend=store.backend,
        customers=customers,
        reconciliation=recon,
        scoring=info,
        scheme=scheme.name,
        summary=summary,
        timings=dict(progress.timings),
    )
