from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from rfm_spark.config import Config
from rfm_spark.errors import ConfigError
from rfm_spark.features import daily_aggregates, rfm_features
from rfm_spark.pipeline.run import start_run

D = dt.date(2026, 11, 23)
TX = "customer_id string, order_id string, order_ts timestamp, amount decimal(18,2)"


def ts(day: str, time: str = "12:00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}")


def feats(spark: SparkSession, rows: list[tuple], lookback: int = 365) -> dict[str, dict]:
    df: DataFrame = spark.createDataFrame(rows, TX)
    out = rfm_features(daily_aggregates(df), snapshot_date=D, lookback_days=lookback)
    return {r["customer_id"]: r.asDict() for r in out.collect()}


def test_window_edges_and_definitions(spark: SparkSession) -> None:
    rows = [
        ("a", "o1", ts("2026-11-22", "23:59:59"), Decimal("10.00")),  # last second before D: in
        ("a", "o2", ts("2026-11-23", "00:00:00"), Decimal("99.00")),  # at D 00:00: out
        ("a", "o3", ts("2025-11-23", "00:00:00"), Decimal("5.00")),  # D - 365 days: in
        ("a", "o4", ts("2025-11-22", "23:59:59"), Decimal("7.00")),  # before the window: out
        ("a", "o1", ts("2026-11-22", "08:00:00"), Decimal("2.50")),  # second line of o1
        ("a", "o5", ts("2026-06-01"), Decimal("20.00")),
        ("a", "o5", ts("2026-06-03"), Decimal("-20.00")),  # return of o5, not an order
    ]
    a = feats(spark, rows)["a"]
    assert a["recency_days"] == 1
    assert a["frequency"] == 3  # o1, o3, o5
    assert a["monetary"] == Decimal("17.50")
    assert a["purchase_days"] == 3
    assert a["avg_order_value"] == Decimal("5.83")
    assert a["first_purchase_date"] == dt.date(2025, 11, 23)
    assert a["last_purchase_date"] == dt.date(2026, 11, 22)
    assert a["tenure_days"] == 365
    assert a["flag"] is None


def test_returns_only_and_non_positive_customers_are_kept_and_flagged(spark: SparkSession) -> None:
    rows = [
        ("r", "o9", ts("2026-10-01"), Decimal("-30.00")),  # only a return in the window
        ("n", "o7", ts("2026-10-01"), Decimal("10.00")),
        ("n", "o8", ts("2026-10-05"), Decimal("-15.00")),
    ]
    got = feats(spark, rows)
    assert got["r"]["flag"] == "returns_only"
    assert got["r"]["frequency"] == 0 and got["r"]["avg_order_value"] is None
    assert got["r"]["recency_days"] == (D - dt.date(2026, 10, 1)).days
    assert got["n"]["flag"] == "non_positive_spend"
    assert got["n"]["monetary"] == Decimal("-5.00")
    assert got["n"]["last_purchase_date"] == dt.date(2026, 10, 1)


def test_rows_without_order_id_are_orders_each(spark: SparkSession) -> None:
    rows = [
        ("x", None, ts("2026-11-01"), Decimal("1.00")),
        ("x", None, ts("2026-11-01"), Decimal("1.00")),
        ("x", None, ts("2026-11-02"), Decimal("-1.00")),
    ]
    x = feats(spark, rows)["x"]
    assert (x["frequency"], x["purchase_days"], x["monetary"]) == (2, 1, Decimal("1.00"))


def test_days_follow_the_session_time_zone(spark: SparkSession) -> None:
    # 2026-11-22 23:30 UTC is already the 23rd in Berlin: outside the window there
    rows = [
        ("b", "o1", ts("2026-11-22", "23:30:00"), Decimal("1.00")),
        ("b", "o2", ts("2026-11-20"), Decimal("1.00")),
    ]
    before = spark.conf.get("spark.sql.session.timeZone")
    try:
        spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
        berlin = feats(spark, rows)["b"]
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    utc = feats(spark, rows)["b"]
    assert (utc["frequency"], utc["recency_days"]) == (2, 1)
    assert (berlin["frequency"], berlin["recency_days"]) == (1, 3)


def test_a_run_refuses_a_session_in_another_zone(spark: SparkSession) -> None:
    """The zone is the session's, set when it is built: a run never changes it underneath a
    caller, it says what to do instead."""
    config = Config().with_overrides({"features.time_zone": "Europe/Berlin"})
    with pytest.raises(ConfigError, match=r"'Europe/Berlin'.*'UTC'.*build_spark\(time_zone="):
        start_run(spark, config, "segment", progress=None, run_id=None)
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
