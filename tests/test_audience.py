"""Campaign audiences on tiny snapshots, against the answer worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.campaigns.audience import allot, wanted
from rfm_spark.campaigns.spec import Campaign
from rfm_spark.errors import ConfigError
from rfm_spark.experiments import CONTROL, TREATMENT

DAY = dt.date(2026, 11, 23)
BEFORE = dt.date(2026, 11, 9)
SEGMENTS = [  # customer: (segment on BEFORE, segment on DAY, cluster on DAY)
    ("c1", "champions", "at_risk", 1),
    ("c2", "champions", "champions", 1),
    ("c3", "loyal", "at_risk", 2),
    ("c4", None, "at_risk", 2),  # new since BEFORE
    ("c5", "champions", None, None),  # gone since BEFORE
    ("c6", "champions", "at_risk", 2),
]


@pytest.fixture(scope="module")
def segments(spark: SparkSession) -> DataFrame:
    rows = [(c, BEFORE, a, None) for c, a, _, _ in SEGMENTS if a]
    rows += [(c, DAY, b, k) for c, _, b, k in SEGMENTS if b]
    schema = "customer_id string, snapshot_date date, segment string, cluster_id int"
    df = spark.createDataFrame(rows, schema)
    return df.withColumn("cluster_name", df["cluster_id"].cast("string"))


def campaign(opt_in: bool = False, **audience: object) -> Campaign:
    return Campaign.model_validate(
        {"name": "c", "audience": audience, "channel": "email", "control_share": 0.5,
         "opt_in": opt_in}
    )  # fmt: skip


def ids(df: DataFrame) -> list[str]:
    return sorted(r["customer_id"] for r in df.collect())


def test_a_move_a_segment_and_a_cluster(segments: DataFrame) -> None:
    winback = campaign(moved_from="champions", moved_to="at_risk")
    assert ids(wanted(segments, winback, DAY, earlier=BEFORE)) == ["c1", "c6"]
    assert ids(wanted(segments, winback, DAY, earlier=None)) == []  # nothing to compare with
    into_risk = campaign(moved_to="at_risk")  # from any segment, not the new customer c4
    assert ids(wanted(segments, into_risk, DAY, earlier=BEFORE)) == ["c1", "c3", "c6"]
    assert ids(wanted(segments, campaign(segment="at_risk", cluster=2), DAY)) == ["c3", "c4", "c6"]
    row = wanted(segments, winback, DAY, earlier=BEFORE).filter("customer_id = 'c1'").first()
    assert row is not None and row["reason"] == f"moved champions -> at_risk since {BEFORE}"
    assert row["arm"] in (CONTROL, TREATMENT)


def test_attribute_filters_and_opt_ins_need_the_customers_table(
    spark: SparkSession, segments: DataFrame
) -> None:
    customers = spark.createDataFrame(
        [("c1", "DE", "true"), ("c3", "FR", None), ("c4", "US", "yes"), ("c6", "DE", "false")],
        "customer_id string, country string, email_opt_in string",
    )
    vip = campaign(segment="at_risk", attributes={"country": ["DE", "FR"]})
    assert ids(wanted(segments, vip, DAY, customers=customers)) == ["c1", "c3", "c6"]
    consenting = campaign(opt_in=True, segment="at_risk", attributes={"country": ["DE", "FR"]})
    assert ids(wanted(segments, consenting, DAY, customers=customers)) == ["c1"]  # null: no
    reachable = campaign(opt_in=True, cluster=2)  # c3, c4, c6; only c4 said yes
    assert ids(wanted(segments, reachable, DAY, customers=customers)) == ["c4"]
    with pytest.raises(ConfigError, match=r"set input\.customers_path"):
        wanted(segments, vip, DAY)
    other = campaign(segment="at_risk", attributes={"region": ["north"]})
    with pytest.raises(ConfigError, match="no column 'region'"):
        wanted(segments, other, DAY, customers=customers)


def test_one_campaign_a_day_first_in_the_file_and_the_frequency_cap(
    spark: SparkSession, segments: DataFrame
) -> None:
    first = Campaign.model_validate(
        {"name": "first", "audience": {"segment": "at_risk"}, "channel": "email",
         "frequency_cap_days": 7, "opt_in": False}
    )  # fmt: skip
    second = Campaign.model_validate(
        {"name": "second", "audience": {"cluster": 2}, "channel": "push", "opt_in": False}
    )
    both = wanted(segments, second, DAY).unionByName(wanted(segments, first, DAY))
    reached = spark.createDataFrame(
        [("c1", DAY - dt.timedelta(days=3)), ("c3", DAY - dt.timedelta(days=7))],
        "customer_id string, date date",
    )
    got = {
        r["customer_id"]: r["campaign"]
        for r in allot(both, [first, second], DAY, reached).collect()
    }
    # c1: reached 3 days ago, inside first's 7-day cap, and not in second's audience
    # c3: reached 7 days ago, the cap allows it again; c4, c6: both want them, first wins
    assert got == {"c3": "first", "c4": "first", "c6": "first"}
    got = {r["customer_id"]: r["campaign"] for r in allot(both, [second, first], DAY).collect()}
    assert got == {"c1": "first", "c3": "second", "c4": "second", "c6": "second"}


def test_attribute_segments_narrow_the_audience(spark: SparkSession, segments: DataFrame) -> None:
    markets = {"c1": "dach", "c3": "france", "c6": "dach"}  # c4 has no market
    tagged = segments.withColumn(
        "attribute_segments",
        F.when(F.col("customer_id") == "c1", F.create_map(F.lit("market"), F.lit(markets["c1"])))
        .when(F.col("customer_id") == "c3", F.create_map(F.lit("market"), F.lit(markets["c3"])))
        .when(F.col("customer_id") == "c6", F.create_map(F.lit("market"), F.lit(markets["c6"]))),
    )
    dach = campaign(segment="at_risk", attribute_segments={"market": ["dach"]})
    assert ids(wanted(tagged, dach, DAY)) == ["c1", "c6"]
    movers = campaign(moved_to="at_risk", attribute_segments={"market": ["france", "dach"]})
    assert ids(wanted(tagged, movers, DAY, earlier=BEFORE)) == ["c1", "c3", "c6"]
    nobody = campaign(segment="at_risk", attribute_segments={"age_band": ["65+"]})
    assert ids(wanted(tagged, nobody, DAY)) == []
