"""The campaign evaluation: treatment against control, per segment and overall.

The audience rows of one campaign (every day it ran) are joined with the valid transactions of
each row's window; one aggregation gives per-arm sums, and the statistics are computed from
them on the driver (:mod:`rfm_spark.experiments`). Contact days whose window runs past the
last day of the transactions are left out and named: their outcome is not known yet.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from rfm_spark.campaigns.outcomes import ALL, arm_summaries, outcomes
from rfm_spark.campaigns.spec import Campaign
from rfm_spark.config import Config
from rfm_spark.errors import UsageError
from rfm_spark.experiments import (
    CONTROL,
    SRM_ALPHA,
    TREATMENT,
    Effect,
    conversion_effect,
    revenue_effect,
    sample_ratio_p_value,
    sample_size,
)
from rfm_spark.io.store import open_store
from rfm_spark.pipeline.rows import valid_rows
from rfm_spark.schemas import AUDIENCES_PARTITION, AUDIENCES_TABLE


@dataclass(frozen=True)
class SegmentEffect:
    """One segment's (or ``(all)``'s) arms and the treatment's effect on them."""

    segment: str
    treatment: int
    control: int
    conversion: Effect | None  # None when an arm is empty
    revenue: Effect | None  # None when an arm has fewer than two customers
    needed: tuple[int, int] | None  # customers per arm to detect the conversion effect


@dataclass(frozen=True)
class Evaluation:
    """What the treatment did: per segment, overall first, and the split's check."""

    campaign: str
    window_days: int
    days: list[dt.date]
    incomplete: list[dt.date]
    rows: list[SegmentEffect]
    srm_p_value: float | None

    @property
    def mismatch(self) -> bool:
        """The arms are off the planned split (sample-ratio mismatch)."""
        return self.srm_p_value is not None and self.srm_p_value < SRM_ALPHA


def evaluate_campaign(
    spark: SparkSession, config: Config, campaign: Campaign, window_days: int
) -> Evaluation:
    """Compare the arms of ``campaign`` over ``window_days`` after each contact day.

    Raises:
        UsageError: No audiences of the campaign yet, or no day whose window is over.
    """
    store = open_store(spark)
    path = config.table_path(AUDIENCES_TABLE)
    audience = (
        store.read(path).filter(F.col("campaign") == F.lit(campaign.name))
        if store.exists(path)
        else None
    )
    days = (
        sorted(r[0] for r in audience.select(AUDIENCES_PARTITION).distinct().collect())
        if audience
        else []
    )
    if audience is None or not days:
        raise UsageError(
            f"campaign {campaign.name!r} has no audience yet; run 'rfm-spark campaigns run' first"
        )
    end = days[-1] + dt.timedelta(days=window_days)
    now = dt.datetime.now(dt.timezone.utc)
    _, rows, _, _ = valid_rows(spark, config, start=days[0], end=end, now=now)
    last = rows.agg(F.max("order_date")).first()
    data_end = (last[0] + dt.timedelta(days=1)) if last and last[0] else days[0]
    complete = [d for d in days if d + dt.timedelta(days=window_days) <= data_end]
    if not complete:
        raise UsageError(
            f"no contact day of {campaign.name!r} has {window_days} days of transactions after "
            f"it yet (the transactions end before {data_end}); wait, or use a shorter --window-days"
        )
    scored = audience.filter(F.col(AUDIENCES_PARTITION).isin(complete))
    sums = arm_summaries(outcomes(scored, rows, window_days)).collect()
    effects = _effects([r.asDict() for r in sums], campaign.control_share)
    overall = next((e for e in effects if e.segment == ALL), None)
    srm = (
        sample_ratio_p_value(overall.treatment, overall.control, campaign.control_share)
        if overall and overall.treatment + overall.control
        else None
    )
    incomplete = [d for d in days if d not in complete]
    return Evaluation(campaign.name, window_days, complete, incomplete, effects, srm)


def _effects(sums: list[dict[str, Any]], control_share: float) -> list[SegmentEffect]:
    """One :class:`SegmentEffect` per segment, ``(all)`` first, then by name."""
    by_segment: dict[str, dict[str, dict[str, Any]]] = {}
    for r in sums:
        by_segment.setdefault(r["segment"] or "(none)", {})[r["arm"]] = r
    out = []
    for segment in sorted(by_segment, key=lambda s: (s != ALL, s)):
        t = by_segment[segment].get(TREATMENT)
        c = by_segment[segment].get(CONTROL)
        n_t, n_c = (t["customers"] if t else 0), (c["customers"] if c else 0)
        conversion = revenue = needed = None
        if t and c:
            conversion = conversion_effect(t["conversions"], n_t, c["conversions"], n_c)
            needed = sample_size(
                conversion.control, conversion.treatment, control_share=control_share
            )
            if n_t > 1 and n_c > 1:
                revenue = revenue_effect(*_moments(t), *_moments(c))
        out.append(SegmentEffect(segment, n_t, n_c, conversion, revenue, needed))
    return out


def _moments(arm: dict[str, Any]) -> tuple[float, float, int]:
    """Mean, standard deviation (ddof 1) and size of revenue per customer from the sums."""
    n, total, squares = arm["customers"], arm["revenue"], arm["revenue_sq"]
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    return mean, math.sqrt(variance), n
