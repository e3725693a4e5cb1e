"""A day's campaign audiences from ``customer_segments``: plain DataFrame transforms, no action.

:func:`wanted` lists the customers one campaign wants on a day (its segment, its move, its
cluster, customer attributes and attribute segments, and the channel's opt-in) with their A/B arm: customers who
cannot be reached are left out before the split, so that both arms are reachable; :func:`allot` then gives each customer to at
most one campaign that day, the first in the file, and leaves out customers any campaign
reached within a campaign's frequency cap. Arms come from :func:`rfm_spark.experiments.arm`,
so a customer's arm does not depend on who else is in the audience.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm_spark.campaigns.spec import Audience, Campaign
from rfm_spark.errors import ConfigError
from rfm_spark.experiments import arm
from rfm_spark.schemas import SNAPSHOT_COLUMN
from rfm_spark.transitions import GONE, NEW, SnapshotPair, transition_pairs

COLUMNS = ["campaign", "customer_id", "segment", "arm", "reason"]


def wanted(
    segments: DataFrame,
    campaign: Campaign,
    day: dt.date,
    *,
    earlier: dt.date | None = None,
    customers: DataFrame | None = None,
) -> DataFrame:
    """The customers ``campaign`` wants on ``day``, before the day's allotment.

    Args:
        segments: ``customer_segments`` rows (the snapshot of ``day`` and, for a move, of
            ``earlier``).
        campaign: The campaign.
        day: The snapshot the campaign runs on.
        earlier: For a move: the snapshot it is measured from (None: nobody has moved yet).
        customers: The customers table, for attribute filters and opt-ins.

    Returns:
        :data:`COLUMNS`: the campaign, the customer, their segment on ``day``, their arm and
        why they are in the audience.

    Raises:
        ConfigError: Attribute filters or opt-ins without a customers table, or on a missing
            column.
    """
    a = campaign.audience
    now = segments.filter(F.col(SNAPSHOT_COLUMN) == F.lit(day))
    if a.is_move:
        base, reason = _moved(segments, now, a, day, earlier)
    else:
        base = now.filter(F.col("segment") == F.lit(a.segment)) if a.segment else now
        reason = F.lit(f"segment {a.segment}" if a.segment else f"cluster {a.cluster}")
    if a.cluster is not None:
        by_id = isinstance(a.cluster, int)
        base = base.filter(F.col("cluster_id" if by_id else "cluster_name") == F.lit(a.cluster))
    for dimension, wanted_segments in a.attribute_segments.items():
        value = F.element_at(F.col("attribute_segments"), F.lit(dimension))
        base = base.filter(value.isin(wanted_segments))
    if campaign.customer_columns():
        base = base.join(_reachable(customers, campaign), on="customer_id", how="left_semi")
    return base.select(
        F.lit(campaign.name).alias("campaign"),
        "customer_id",
        "segment",
        arm(campaign.split_salt, campaign.control_share).alias("arm"),
        reason.alias("reason"),
    )


def _moved(
    segments: DataFrame, now: DataFrame, a: Audience, day: dt.date, earlier: dt.date | None
) -> tuple[DataFrame, Column]:
    """The customers of ``now`` whose segment moved as ``a`` asks since ``earlier``."""
    if earlier is None:
        return now.limit(0), F.lit("")
    pairs = transition_pairs(segments, SnapshotPair(earlier, day, earlier))
    moved = pairs.filter(
        (F.col("from_segment") != F.col("to_segment"))
        & (F.col("from_segment") != F.lit(NEW))
        & (F.col("to_segment") != F.lit(GONE))
    )
    if a.moved_from is not None:
        moved = moved.filter(F.col("from_segment") == F.lit(a.moved_from))
    if a.moved_to is not None:
        moved = moved.filter(F.col("to_segment") == F.lit(a.moved_to))
    base = now.join(moved.select("customer_id", "from_segment"), on="customer_id")
    reason = F.concat(
        F.lit("moved "), F.col("from_segment"), F.lit(" -> "), F.col("segment"),
        F.lit(f" since {earlier}"),
    )  # fmt: skip
    return base, reason


def _reachable(customers: DataFrame | None, campaign: Campaign) -> DataFrame:
    """The ids of the customers who match every attribute filter of ``campaign`` and opted in
    to its channel (a null opt-in is no consent)."""
    needed = campaign.customer_columns()
    if customers is None:
        raise ConfigError(
            f"campaign {campaign.name!r} filters on customer columns {needed} (attributes, "
            "opt-in); set input.customers_path (--customers-input), or opt_in: false"
        )
    missing = [c for c in needed if c not in customers.columns]
    if missing:
        raise ConfigError(
            f"campaign {campaign.name!r}: the customers table has no column {missing[0]!r}; it "
            f"has {', '.join(customers.columns)}"
        )
    match = F.lit(True)
    for column, values in campaign.audience.attributes.items():
        match = match & F.col(column).cast("string").isin(values)
    if campaign.consent_column:
        match = match & F.coalesce(F.col(campaign.consent_column).cast("boolean"), F.lit(False))
    return customers.filter(match).select("customer_id")


def allot(
    wanted_today: DataFrame,
    campaigns: Sequence[Campaign],
    day: dt.date,
    reached: DataFrame | None = None,
) -> DataFrame:
    """Each customer to at most one campaign on ``day`` (the first in ``campaigns`` that wants
    them), without the customers any campaign reached within the campaign's frequency cap.

    Args:
        wanted_today: The union of the campaigns' :func:`wanted` rows.
        campaigns: The campaigns in priority order.
        day: The day being allotted.
        reached: Earlier allotments: ``customer_id`` and ``date`` (either arm counts: a
            control customer held out by one campaign is not treated by another).

    Returns:
        :data:`COLUMNS`, one row per customer at most.
    """
    rank = F.create_map(*[F.lit(x) for i, c in enumerate(campaigns) for x in (c.name, i)])
    caps = {c.name: c.frequency_cap_days for c in campaigns if c.frequency_cap_days}
    rows = wanted_today.withColumn("_rank", F.element_at(rank, F.col("campaign")))
    if caps and reached is not None:
        last = (
            reached.filter(F.col("date") < F.lit(day))
            .groupBy("customer_id")
            .agg(F.max("date").alias("_last"))
        )
        by_name = F.create_map(*[F.lit(x) for kv in caps.items() for x in kv])
        cap = F.element_at(by_name, F.col("campaign"))
        apart = F.datediff(F.lit(day), F.col("_last")) >= cap  # contacts at least cap days apart
        rows = rows.join(last, on="customer_id", how="left").filter(
            cap.isNull() | F.col("_last").isNull() | apart
        )
    first = Window.partitionBy("customer_id").orderBy("_rank")
    return (
        rows.withColumn("_n", F.row_number().over(first)).filter(F.col("_n") == 1).select(*COLUMNS)
    )
