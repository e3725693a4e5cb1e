"""The campaigns run: a day's audiences into ``campaign_audiences``, the contact lists to files.

For the snapshot of the day, every campaign of the file takes the customers it wants
(:func:`rfm_spark.campaigns.audience.wanted`), each customer goes to at most one campaign under
the frequency caps (:func:`~rfm_spark.campaigns.audience.allot`, against the days already in
the table), and the day's partition of ``campaign_audiences`` is replaced in one commit: a rerun
of a day gives the same rows (the arms are a function of the salt and the customer). The
treatment arm of each campaign is then written as its contact list, one file per campaign.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark import transitions as tr
from rfm_spark.campaigns.audience import allot, wanted
from rfm_spark.campaigns.spec import Campaign, CampaignFile, check_segments
from rfm_spark.config import Config
from rfm_spark.errors import TransitionUsageError, UsageError
from rfm_spark.experiments import TREATMENT
from rfm_spark.io.exports import write_result
from rfm_spark.io.inputs import read_customer_attributes
from rfm_spark.io.store import TableStore, open_store
from rfm_spark.paths import join
from rfm_spark.progress import Progress
from rfm_spark.schemas import AUDIENCES_PARTITION, AUDIENCES_SCHEMA, AUDIENCES_TABLE, cast
from rfm_spark.segments import load_scheme


@dataclass(frozen=True)
class CampaignsResult:
    """What a campaigns run wrote: the table version, customers per (campaign, arm) as
    committed, and the contact lists."""

    day: dt.date
    table: str
    version: int
    counts: dict[tuple[str, str], int]
    files: dict[str, str] = field(default_factory=dict)


def run_campaigns(
    spark: SparkSession,
    config: Config,
    spec: CampaignFile,
    day: dt.date,
    out_dir: str,
    *,
    fmt: str = "csv",
    run_id: str = "",
    progress: Progress | None = None,
) -> CampaignsResult:
    """Build, allot and commit the day's audiences, then write the treatment contact lists.

    Raises:
        UsageError: No segments table or no snapshot on ``day``.
        ConfigError: A campaign names a segment the scheme lacks, or attributes the customers
            table lacks.
    """
    progress = progress or Progress("campaigns")
    store = open_store(spark)
    if not store.exists(config.table_path()):
        raise UsageError(
            f"no customer_segments table yet; run 'rfm-spark segment --snapshot-date {day}' first"
        )
    segments = store.read(config.table_path())
    check_segments(spec, load_scheme(config.segments.scheme))
    available = tr.available_snapshots(segments)
    if day not in available:
        tr.resolve_pair(available, day, 1)  # raises, naming the nearest snapshots
    customers = _customers(spark, config, spec)
    per_campaign = [
        wanted(segments, c, day, earlier=_earlier(available, day, c), customers=customers)
        for c in spec.campaigns
    ]
    path = config.table_path(AUDIENCES_TABLE)
    reached = _reached(store, path, spec, day)
    channel = F.create_map(*[F.lit(x) for c in spec.campaigns for x in (c.name, c.channel)])
    rows = allot(reduce(DataFrame.unionByName, per_campaign), spec.campaigns, day, reached)
    rows = rows.select(
        F.lit(day).alias(AUDIENCES_PARTITION), "campaign", "customer_id", "arm", "segment",
        "reason", F.element_at(channel, F.col("campaign")).alias("channel"),
        F.lit(run_id).alias("run_id"),
    ).select(*[cast(F.col(f.name), f.dataType).alias(f.name) for f in AUDIENCES_SCHEMA.fields])  # fmt: skip
    with progress.step(f"building {len(spec.campaigns)} audience(s) for {day} into {path}"):
        version = store.write_partition(
            rows,
            path,
            partition_column=AUDIENCES_PARTITION,
            partition_value=day,
            metadata={"run_id": run_id, "date": day.isoformat()},
        )
    committed = store.read(path, version=version).filter(F.col(AUDIENCES_PARTITION) == F.lit(day))
    committed = committed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {
            (r["campaign"], r["arm"]): int(r["count"])
            for r in committed.groupBy("campaign", "arm").count().collect()
        }
        with progress.step(f"writing the contact lists to {out_dir}"):
            files = _contact_lists(committed, spec, day, out_dir, fmt)
    finally:
        committed.unpersist()
    return CampaignsResult(day, path, version, counts, files)


def _reached(store: TableStore, path: str, spec: CampaignFile, day: dt.date) -> DataFrame | None:
    """Earlier days' audiences as far back as the longest frequency cap reaches (partition
    pruning on ``date``), or None when no campaign has a cap or the table does not exist."""
    caps = [c.frequency_cap_days for c in spec.campaigns if c.frequency_cap_days]
    if not caps or not store.exists(path):
        return None
    since = day - dt.timedelta(days=max(caps))
    days = F.col(AUDIENCES_PARTITION)
    recent = store.read(path).filter((days >= F.lit(since)) & (days < F.lit(day)))
    return recent.select("customer_id", days.alias("date"))


def _earlier(available: list[dt.date], day: dt.date, campaign: Campaign) -> dt.date | None:
    """The snapshot a move audience is measured from (None: none old enough)."""
    if not campaign.audience.is_move:
        return None
    try:
        return tr.resolve_pair(available, day, campaign.audience.within_days).earlier
    except TransitionUsageError:
        return None


def _customers(spark: SparkSession, config: Config, spec: CampaignFile) -> DataFrame | None:
    """The customers table's columns the campaigns filter on (None when none does)."""
    columns = sorted({k for c in spec.campaigns for k in c.customer_columns()})
    if not columns:
        return None
    users = [c.name for c in spec.campaigns if c.customer_columns()]
    return read_customer_attributes(
        spark, config.input, columns, needed_for=f"campaigns {users} (attributes, opt-ins)"
    )


def _contact_lists(
    committed: DataFrame, spec: CampaignFile, day: dt.date, out_dir: str, fmt: str
) -> dict[str, str]:
    """One file per campaign: its treatment arm's customers, segment, reason and channel."""
    files = {}
    for c in spec.campaigns:
        target = join(out_dir, f"{c.name}-{day.isoformat()}.{fmt}")
        treated = committed.filter((F.col("campaign") == c.name) & (F.col("arm") == TREATMENT))
        write_result(
            treated.select("customer_id", "segment", "reason", "channel").orderBy("customer_id"),
            target,
        )
        files[c.name] = target
    return files
