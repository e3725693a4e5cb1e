"""The window state: the window sums of the last incremental snapshot, moved to the next one.

A snapshot's features come from its window's :func:`~rfm_spark.features.window_sums`, one row
per customer that does not depend on the snapshot date. An incremental run keeps them (the
``customer_window_state`` table) with the snapshot date ``S``, the lookback ``L`` and the
version ``V`` of the activity table they were computed from. The next snapshot ``S'`` (at
activity version ``V'``) changes the sums of only some customers:

- those with an activity row on a day that enters the window (``S <= day < S'``) or leaves it
  (``S - L <= day < S' - L``), as of ``V'``;
- those whose activity changed between ``V`` and ``V'`` (the activity table's change data
  feed: late rows, corrections, a rebuild).

Their sums are computed again from the new window's activity; every other customer's row is
kept as it is. That equals a recompute of the whole window: an unaffected customer has the
same activity rows in both windows. When the state cannot be used (none yet, another lookback,
an earlier snapshot, ``S' - S >= L``, another state format), the sums are recomputed from the
whole window. All functions here build plans or decide from metadata; they run no Spark action.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.features import window_sums
from rfm_spark.schemas import ACTIVITY_PARTITION

# Bumped when the state's columns or their meaning change: an older state is then not used.
STATE_FORMAT = "1"
PARTITION = "lookback_days"  # one state per lookback in one table
DAY = ACTIVITY_PARTITION

# Commit metadata of a state write.
SNAPSHOT_KEY = "snapshot_date"
VERSION_KEY = "activity_version"
FORMAT_KEY = "state_format"


@dataclass(frozen=True)
class Kept:
    """A kept state: the snapshot ``S`` and activity version ``V`` its sums are for."""

    snapshot: dt.date
    lookback: int
    activity_version: int

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> Kept | None:
        """The state a commit's metadata describes; None for another format or none."""
        if metadata.get(FORMAT_KEY) != STATE_FORMAT:
            return None
        return cls(
            snapshot=dt.date.fromisoformat(metadata[SNAPSHOT_KEY]),
            lookback=int(metadata[PARTITION]),
            activity_version=int(metadata[VERSION_KEY]),
        )

    def metadata(self) -> dict[str, str]:
        return {
            FORMAT_KEY: STATE_FORMAT,
            SNAPSHOT_KEY: self.snapshot.isoformat(),
            PARTITION: str(self.lookback),
            VERSION_KEY: str(self.activity_version),
        }

    def unusable_for(self, snapshot: dt.date, lookback: int, activity_version: int) -> str | None:
        """Why this state cannot be moved to ``snapshot`` (None when it can)."""
        if lookback != self.lookback:
            return f"it is for a {self.lookback}-day window"
        if snapshot < self.snapshot:
            return f"it is for a later snapshot ({self.snapshot})"
        if (snapshot - self.snapshot).days >= lookback:
            return f"its snapshot ({self.snapshot}) is a whole window earlier"
        if activity_version < self.activity_version:
            return "the activity table is older than the state (restored?)"
        return None

    def moved_days(self, snapshot: dt.date) -> list[dt.date]:
        """The days that enter or leave the window from this state's snapshot to ``snapshot``."""
        step = (snapshot - self.snapshot).days
        entering = [self.snapshot + dt.timedelta(days=i) for i in range(step)]
        start = self.snapshot - dt.timedelta(days=self.lookback)
        leaving = [start + dt.timedelta(days=i) for i in range(step)]
        return sorted({*entering, *leaving})


def in_window(activity: DataFrame, snapshot: dt.date, lookback: int) -> DataFrame:
    """The daily rows (``customer_id``, ``order_date``, ``orders``, ``net_amount``) of the
    window ``[snapshot - lookback, snapshot)`` of an activity table."""
    start = snapshot - dt.timedelta(days=lookback)
    day = F.col(DAY)
    rows = activity.filter((day >= F.lit(start)) & (day < F.lit(snapshot)))
    return rows.select("customer_id", DAY, "orders", "net_amount")


def affected_customers(
    activity: DataFrame, changed: DataFrame | None, days: list[dt.date]
) -> DataFrame:
    """The distinct customers whose window sums may move: an activity row on one of ``days``
    (entering or leaving the window), or a row in ``changed`` (the activity's change data
    feed since the state was made)."""
    ids = activity.filter(F.col(DAY).isin(days)).select("customer_id") if days else None
    if changed is not None:
        fed = changed.select("customer_id")
        ids = fed if ids is None else ids.unionByName(fed)
    if ids is None:
        return activity.select("customer_id").limit(0)
    return ids.distinct()


def moved_sums(
    kept: DataFrame, window: DataFrame, affected: DataFrame, *, broadcast: bool
) -> DataFrame:
    """The window sums of the new window: ``kept`` (the state's sums) for every customer not
    ``affected``, the sums computed again from ``window`` (:func:`in_window`) for the others.

    Args:
        kept: The state's rows (:func:`~rfm_spark.features.window_sums` columns).
        window: The new window's daily rows.
        affected: :func:`affected_customers`.
        broadcast: Send ``affected`` to every task (few customers) instead of shuffling.
    """
    ids = F.broadcast(affected) if broadcast else affected
    unchanged = kept.join(ids, on="customer_id", how="left_anti")
    again = window_sums(window.join(ids, on="customer_id", how="left_semi"))
    return unchanged.select(*again.columns).unionByName(again)
