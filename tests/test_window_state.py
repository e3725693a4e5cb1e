"""The window state: an incremental snapshot moved forward from the last one's window sums.

The moved sums are checked against sums computed by pandas from the same daily rows, and whole
incremental runs (state moved, or not usable) against full runs over the same input.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from _arrivals import LOOKBACK, D, config, deliver, snapshot
from pyspark.sql import DataFrame, SparkSession

from rfm_spark.features import window_sums
from rfm_spark.pipeline import run_segment
from rfm_spark.progress import Progress
from rfm_spark.window_state import (
    Kept,
    affected_customers,
    in_window,
    moved_sums,
)

SUMS = ["frequency", "monetary", "purchase_days", "first_buy", "last_buy"]
SUMS += ["first_active", "last_active"]


def test_a_state_is_moved_only_forward_and_within_a_window() -> None:
    kept = Kept(snapshot=D, lookback=30, activity_version=7)
    assert Kept.from_metadata(kept.metadata()) == kept
    assert Kept.from_metadata({**kept.metadata(), "state_format": "0"}) is None
    assert kept.unusable_for(D + dt.timedelta(days=29), 30, 7) is None
    assert kept.unusable_for(D, 30, 9) is None
    assert "30-day window" in (kept.unusable_for(D, 31, 7) or "")
    assert "later snapshot" in (kept.unusable_for(D - dt.timedelta(days=1), 30, 7) or "")
    assert "whole window" in (kept.unusable_for(D + dt.timedelta(days=30), 30, 7) or "")
    assert "older" in (kept.unusable_for(D, 30, 6) or "")
    # two days on: the two days after the old window enter it, its first two days leave it
    start = D - dt.timedelta(days=30)
    days = [start, start + dt.timedelta(days=1), D, D + dt.timedelta(days=1)]
    assert kept.moved_days(D + dt.timedelta(days=2)) == days
    assert kept.moved_days(D) == []


def _activity(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(
        rows, "customer_id string, order_date date, orders bigint, net_amount decimal(28,2)"
    )


def _random_days(rng: random.Random, n: int) -> list[tuple]:
    """Customer-days over 80 days before D + 10 (some with returns only, or nothing bought)."""
    out = {}
    for _ in range(n):
        key = (f"c{rng.randrange(25)}", D + dt.timedelta(days=rng.randrange(-70, 10)))
        orders = rng.choice([0, 1, 1, 2])
        amount = rng.choice(["12.50", "99.00", "-5.25", "0.99"] if orders else ["-5.25", "-12.50"])
        out[key] = (*key, orders, Decimal(amount))
    return list(out.values())


def _pandas_sums(rows: list[tuple], snap: dt.date, lookback: int) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "order_date", "orders", "net_amount"])
    start = snap - dt.timedelta(days=lookback)
    df = df[(df.order_date >= start) & (df.order_date < snap)].copy()
    df["net_amount"] = df.net_amount.astype(float)
    df["order_date"] = pd.to_datetime(df.order_date)
    df["bought"] = df.order_date.where(df.orders > 0)
    sums = df.groupby("customer_id").agg(
        frequency=("orders", "sum"),
        monetary=("net_amount", "sum"),
        purchase_days=("orders", lambda s: int((s > 0).sum())),
        first_buy=("bought", "min"),
        last_buy=("bought", "max"),
        first_active=("order_date", "min"),
        last_active=("order_date", "max"),
    )
    return sums.sort_index()


def _spark_sums(df: DataFrame) -> pd.DataFrame:
    out = df.toPandas().set_index("customer_id").sort_index()[SUMS]
    out["monetary"] = out.monetary.astype(float)
    for day in ("first_buy", "last_buy", "first_active", "last_active"):
        out[day] = pd.to_datetime(out[day])
    return out


@pytest.mark.parametrize("step,seed", [(0, 1), (1, 2), (3, 3), (29, 4)])
def test_moved_sums_equal_the_sums_of_the_new_window(
    spark: SparkSession, step: int, seed: int
) -> None:
    """A state of the window before ``D`` moved ``step`` days on, while some customer-days
    changed, were removed or were added (the change feed's rows): the sums equal pandas' sums
    of the new window, whether the changed customers are broadcast or shuffled."""
    rng = random.Random(seed)
    before = _random_days(rng, 300)
    after = [r for r in before if rng.random() > 0.05]  # some customer-days removed
    after = [(c, d, o + 1, a) if rng.random() < 0.05 else (c, d, o, a) for c, d, o, a in after]
    after += [r for r in _random_days(rng, 20) if (r[0], r[1]) not in {x[:2] for x in after}]
    changed = sorted(set(before) ^ set(after))  # the feed: old and new images
    new = D + dt.timedelta(days=step)
    state = window_sums(in_window(_activity(spark, before), D, LOOKBACK))
    kept = Kept(snapshot=D, lookback=LOOKBACK, activity_version=0)
    activity = _activity(spark, after)
    affected = affected_customers(activity, _activity(spark, changed), kept.moved_days(new))
    expected = _pandas_sums(after, new, LOOKBACK)
    for broadcast in (True, False):
        moved = moved_sums(state, in_window(activity, new, LOOKBACK), affected, broadcast=broadcast)
        pd.testing.assert_frame_equal(_spark_sums(moved), expected, check_dtype=False)
    # and the test can fail: on the same snapshot, without the changes inside the window,
    # the kept state is not the new window's
    start = new - dt.timedelta(days=LOOKBACK)
    if step == 0 and any(start <= r[1] < new for r in changed):
        stale = affected_customers(activity, None, kept.moved_days(new))
        moved = moved_sums(state, in_window(activity, new, LOOKBACK), stale, broadcast=True)
        assert not _spark_sums(moved).equals(expected)


def _run(spark: SparkSession, root: Path, day: dt.date, **more: object) -> str:
    """An incremental and a full run of ``day``; the snapshots must be equal. Returns the
    incremental run's progress lines."""
    lines = io.StringIO()
    run_segment(
        spark, config(root, "incremental", **more), day, progress=Progress("t", stream=lines)
    )
    run_segment(spark, config(root, "full", **more), day, progress=Progress("t", quiet=True))
    pd.testing.assert_frame_equal(snapshot(root / "incremental", day), snapshot(root / "full", day))
    return lines.getvalue()


@pytest.mark.slow
def test_incremental_runs_move_the_state_and_equal_full_runs(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Days go by with new, late and leaving rows; the state is moved where it can be and
    every snapshot equals the full recompute."""
    first = [("c1", "o1", 3, 10, "12.50"), ("c2", "", 30, 9, "5.25"), ("c3", "o2", 28, 8, "9.00")]
    first += [("c4", "o3", 10, 8, "-5.25"), ("c5", "o4", 12, 8, "20.00")]
    deliver(tmp_path / "input", "a.csv", first)
    assert "no window state kept yet" in _run(spark, tmp_path, D)
    # a new day and a late row of a known order; c2's only day leaves the window
    deliver(tmp_path / "input", "b.csv", [("c6", "o5", 0, 9, "7.00"), ("c1", "o1", 3, 11, "1.00")])
    lines = _run(spark, tmp_path, D + dt.timedelta(days=1))
    assert f"moving the window state of {D} to {D + dt.timedelta(days=1)}" in lines
    # two days later, a return for a day inside the window, and the same snapshot again
    deliver(tmp_path / "input", "c.csv", [("c5", "o4", 12, 9, "-20.00")])
    later = D + dt.timedelta(days=3)
    assert "moving the window state" in _run(spark, tmp_path, later)
    assert re.search(r"\b0 of \d+ customers changed", _run(spark, tmp_path, later))
    # an earlier snapshot, then a whole window later: aggregated from the window
    assert "for a later snapshot" in _run(spark, tmp_path, D + dt.timedelta(days=2))
    assert "moving the window state" in _run(spark, tmp_path, later)
    deliver(tmp_path / "input", "d.csv", [("c7", "o6", -(3 + LOOKBACK), 9, "3.00")])
    assert "whole window earlier" in _run(spark, tmp_path, later + dt.timedelta(days=LOOKBACK + 1))


@pytest.mark.slow
def test_a_state_whose_changes_were_vacuumed_is_not_used(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The files of the activity's changes since the state are gone: the run says so and
    aggregates the window (the state is a cache)."""
    deliver(tmp_path / "input", "a.csv", [("c1", "o1", 3, 10, "12.50"), ("c2", "", 5, 9, "5.25")])
    _run(spark, tmp_path, D)
    # another lookback's run reads a late row into the activity (its own state: none yet)
    deliver(tmp_path / "input", "b.csv", [("c1", "o1", 3, 11, "1.00")])
    _run(spark, tmp_path, D, **{"features.lookback_days": LOOKBACK + 1})
    activity = tmp_path / "incremental" / "customer_day_activity"
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    spark.conf.set(check, "false")
    try:
        spark.sql(f"VACUUM delta.`{activity}` RETAIN 0 HOURS")
    finally:
        spark.conf.unset(check)
    lines = _run(spark, tmp_path, D + dt.timedelta(days=1))
    assert "cannot be read" in lines, lines
    # the state written by that run is used by the next one
    assert "moving the window state" in _run(spark, tmp_path, D + dt.timedelta(days=2))
    shutil.rmtree(tmp_path / "incremental" / "customer_window_state")
    assert "no window state kept yet" in _run(spark, tmp_path, D + dt.timedelta(days=2))
