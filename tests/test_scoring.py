from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import Window as W
from pyspark.sql import functions as F

from rfm_spark.config import ScoringSettings, Thresholds
from rfm_spark.scoring import (
    bucket_starts,
    score,
    score_ntile,
    score_quantile,
    score_thresholds,
)
from rfm_spark.scoring.ntile import LITERAL_CUTS, MAX_RANGES, TRIPLES, auto_ranges
from rfm_spark.sqltext import sql_literal

SCHEMA = (
    "customer_id string, recency_days int, frequency bigint, monetary decimal(18,2), country string"
)


def features(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def spark_ntile(df: DataFrame, bins: int, groups: list[str]) -> DataFrame:
    """Spark's own ntile over the product's orders (the reference)."""
    part = [F.coalesce(F.col(g), F.lit("(null)")) for g in groups]

    def nt(*order: str | F.Column) -> F.Column:
        return F.ntile(bins).over(W.partitionBy(*part).orderBy(*order))

    return df.select(
        "customer_id",
        nt(F.col("recency_days").desc(), "customer_id").alias("r_score"),
        nt("frequency", "customer_id").alias("f_score"),
        nt("monetary", "customer_id").alias("m_score"),
    )


def scores_of(df: DataFrame) -> dict[str, tuple[int, int, int]]:
    return {r["customer_id"]: (r["r_score"], r["f_score"], r["m_score"]) for r in df.collect()}


row = st.tuples(
    st.sampled_from([1, 2, 7, 30, 364]),  # heavy ties on every measure
    st.sampled_from([0, 1, 1, 1, 2, 5]),
    st.sampled_from(["-12.50", "0.00", "9.99", "9.99", "250.00"]),
    st.sampled_from(["DE", "FR", None]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row, min_size=1, max_size=80),
    bins=st.integers(2, 7),
    ranges=st.integers(1, 6),
    grouped=st.booleans(),
)
def test_exact_ntile_equals_spark_ntile(spark: SparkSession, rows, bins, ranges, grouped) -> None:
    data = [(f"c{i:03d}", r, f, Decimal(m), c) for i, (r, f, m, c) in enumerate(rows)]
    df = features(spark, data)
    groups = ["country"] if grouped else []
    ours, info = score_ntile(df, bins=bins, partition_by=groups, ranges=ranges)
    assert scores_of(ours) == scores_of(spark_ntile(df, bins, groups))
    assert ours.count() == len(data)
    assert info.method == "ntile"


def test_bucket_starts_are_where_spark_ntile_steps_up(spark: SparkSession) -> None:
    # every total from 1 to 23 rows, every bin count 2..6: the positions at which Spark's own
    # ntile moves to the next bucket
    rows = [(t, p) for t in range(1, 24) for p in range(1, t + 1)]
    df = spark.createDataFrame(rows, "total long, pos long")
    for n in range(2, 7):
        ref = df.select(
            "total", "pos", F.ntile(n).over(W.partitionBy("total").orderBy("pos")).alias("b")
        ).collect()
        steps: dict[int, list[int]] = {t: [] for t in range(1, 24)}
        prev: dict[int, int] = {}
        for r in sorted(ref):  # by total, then position
            if r["pos"] > 1 and r["b"] != prev[r["total"]]:
                steps[r["total"]].append(r["pos"])
            prev[r["total"]] = r["b"]
        assert {t: bucket_starts(t, n) for t in steps} == steps


@pytest.mark.parametrize("ranges", [3, 40])
def test_range_counts_by_triples_and_by_axis_agree_with_spark(
    spark: SparkSession, ranges: int
) -> None:
    """Few ranges are counted per (R, F, M) range triple, many (40^3 > TRIPLES) per axis: both
    give Spark's ntile, grouped or not."""
    rows = [
        (f"c{i:03d}", i % 23, i % 7, Decimal(i % 13), ("DE", "FR", None)[i % 3]) for i in range(400)
    ]
    df = features(spark, rows)
    for groups in ([], ["country"]):
        ours, info = score_ntile(df, bins=5, partition_by=groups, ranges=ranges)
        assert scores_of(ours) == scores_of(spark_ntile(df, 5, groups))
        used = max(info.ranges.values())
        assert used**3 > TRIPLES if ranges == 40 else used**3 <= TRIPLES


@contextlib.contextmanager
def compiled_only(spark: SparkSession) -> Iterator[None]:
    """Spark's generated code must compile: a failure raises instead of falling back to the
    interpreted evaluation (which would hide the limit these tests pin)."""
    spark.conf.set("spark.sql.codegen.fallback", "false")
    try:
        yield
    finally:
        spark.conf.unset("spark.sql.codegen.fallback")


def test_the_most_ranges_still_compile_and_equal_spark(spark: SparkSession) -> None:
    """The range lookup is generated code: with as many ranges as the scorer ever uses (the
    auto choice stops there, however many customers or cores) Spark compiles it, here with
    its interpreted fallback turned off, for text ids and grouped keys alike."""
    assert auto_ranges(10**10) == MAX_RANGES and auto_ranges(150_000) == 1
    rows = [
        (f"customer-{i:07d}", i % 97, i % 31, Decimal(i % 1009) / 4, ("DE", "FR")[i % 2])
        for i in range(6000)
    ]
    df = features(spark, rows)
    with compiled_only(spark):
        for groups in ([], ["country"]):
            ours, info = score_ntile(df, bins=5, partition_by=groups, ranges=MAX_RANGES)
            assert max(info.ranges.values()) > MAX_RANGES // 2
            assert scores_of(ours) == scores_of(spark_ntile(df, 5, groups))


@pytest.mark.parametrize("groups", [LITERAL_CUTS // 4, 40])
def test_many_groups_compile_and_equal_spark(spark: SparkSession, groups: int) -> None:
    """Up to LITERAL_CUTS cut keys per axis the scores are one compiled expression; beyond
    (40 groups of 5 scores: 160 keys, e.g. a backfill of 40 snapshots) each group's keys are
    broadcast to its rows. Both compile (the interpreted fallback is off), both equal Spark's
    ntile, and neither shuffles the customers."""
    rows = [
        (f"customer-{i:06d}", i % 89, i % 23, Decimal(i % 997) / 4, f"g{i % groups:02d}")
        for i in range(groups * 60)
    ]
    df = features(spark, rows)
    with compiled_only(spark):
        ours, _ = score_ntile(df, bins=5, partition_by=["country"], ranges=4)
        assert scores_of(ours) == scores_of(spark_ntile(df, 5, ["country"]))
    plan = ours._jdf.queryExecution().executedPlan().toString()
    assert "Exchange hashpartitioning" not in plan and "Window" not in plan
    assert ("BroadcastExchange" in plan) == (groups * 4 > LITERAL_CUTS)


def test_scoring_plan_is_a_narrow_map(spark: SparkSession) -> None:
    """Scoring adds no shuffle at all: no window over the customers, nothing gathered."""
    df = features(spark, [(f"c{i:03d}", i % 17, i % 5, Decimal(i % 11), "DE") for i in range(300)])
    ours, _ = score_ntile(df, bins=5, ranges=4)
    assert scores_of(ours) == scores_of(spark_ntile(df, 5, []))
    plan = ours._jdf.queryExecution().executedPlan().toString()
    assert "Exchange" not in plan and "Window" not in plan
    naive = df.select(F.ntile(5).over(W.orderBy("frequency", "customer_id")))
    naive.collect()
    assert "SinglePartition" in naive._jdf.queryExecution().executedPlan().toString()


def test_exact_ntile_plans_all_axes_with_a_sample_and_one_range_count(
    spark: SparkSession,
) -> None:
    """Planning costs the same few small jobs for any number of ranges and groups (one sample
    and one range count for R, F and M together; the offsets are literals, not a joined
    table), and the scores still equal Spark's ntile."""
    rows = [
        (f"c{i:03d}", i % 17, i % 5, Decimal(i % 11), ("DE", "FR", None)[i % 3]) for i in range(300)
    ]
    df = features(spark, rows).cache()
    df.count()
    sc = spark.sparkContext
    sc.setJobGroup("ntile-planning", "planning of the exact ntile")
    try:
        ours, info = score_ntile(df, bins=5, partition_by=["country"], ranges=6, rows=300)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    planning_jobs = sc.statusTracker().getJobIdsForGroup("ntile-planning")
    assert 1 <= len(planning_jobs) <= 3
    assert info.ranges == {"r": 6, "f": 6, "m": 6}
    assert scores_of(ours) == scores_of(spark_ntile(df, 5, ["country"]))
    df.unpersist()


def test_sql_literals_round_trip_every_key_type(spark: SparkSession) -> None:
    """The literals the range lookup is written with come back as the same typed values, and
    text that looks like SQL stays text."""
    import datetime as dt

    from pyspark.sql import types as T

    cases = [
        ("it's'); DROP TABLE x; --", T.StringType()),
        ('\\ " ` \u00e9 \U0001f600 \n', T.StringType()),
        ("", T.StringType()),
        (-(2**63), T.LongType()),
        (-7, T.IntegerType()),
        (Decimal("-12345678901234.56"), T.DecimalType(18, 2)),
        (Decimal("0.10"), T.DecimalType(18, 2)),
        (-0.1, T.DoubleType()),
        (float("inf"), T.DoubleType()),
        (float("-inf"), T.DoubleType()),
        (-3, T.ShortType()),
        (5, T.ByteType()),
        (True, T.BooleanType()),
        (dt.date(2026, 2, 28), T.DateType()),
        (None, T.LongType()),
    ]
    row = (
        spark.range(1)
        .select(*[F.expr(sql_literal(v, t)).alias(f"c{i}") for i, (v, t) in enumerate(cases)])
        .first()
    )
    assert row is not None
    assert [row[f"c{i}"] for i in range(len(cases))] == [v for v, _ in cases]
    got_types = (
        spark.range(1)
        .select(*[F.expr(sql_literal(v, t)).alias(f"c{i}") for i, (v, t) in enumerate(cases)])
        .schema
    )
    assert [f.dataType for f in got_types.fields] == [t for _, t in cases]
    with pytest.raises(TypeError, match="cannot rank"):
        sql_literal([1], T.ArrayType(T.IntegerType()))


def test_exact_ntile_refuses_features_with_its_working_column_names(spark: SparkSession) -> None:
    from rfm_spark.errors import ConfigError

    df = features(spark, [("c1", 1, 1, Decimal(1), "DE")]).withColumn("_key_r", F.lit(0))
    with pytest.raises(ConfigError, match="_key_r"):
        score_ntile(df, bins=5)


def test_exact_ntile_is_deterministic_across_samples(spark: SparkSession) -> None:
    df = features(spark, [(f"c{i:03d}", i % 3, i % 2, Decimal(i % 4), None) for i in range(200)])
    a, _ = score_ntile(df, bins=5, ranges=5, seed=1)
    b, _ = score_ntile(df, bins=5, ranges=3, seed=99)
    assert scores_of(a) == scores_of(b)


def test_quantile_ties_share_a_score_and_collapse_is_reported(spark: SparkSession) -> None:
    # 60% bought once: they must all get the same F score
    rows = [
        (f"c{i:03d}", 1 + i % 50, 1 if i < 60 else 2 + i % 7, Decimal(i), "DE") for i in range(100)
    ]
    df = features(spark, rows)
    out, info = score_quantile(df, bins=5, relative_error=0.0001)
    got = {r["customer_id"]: r for r in out.collect()}
    assert len({got[f"c{i:03d}"]["f_score"] for i in range(60)}) == 1
    for measure, s in (
        ("frequency", "f_score"),
        ("monetary", "m_score"),
        ("recency_days", "r_score"),
    ):
        by_value: dict = {}
        for r in got.values():
            by_value.setdefault(r[measure], set()).add(r[s])
        assert all(len(v) == 1 for v in by_value.values()), measure
    assert info.collapsed["f"][""]  # some F scores are unreachable
    assert not info.collapsed["m"]  # monetary values are all distinct
    # higher is better: monotone in the measure (R reversed)
    pairs = sorted((r["recency_days"], r["r_score"]) for r in got.values())
    assert all(b[1] <= a[1] for a, b in itertools.pairwise(pairs))


def test_quantile_scores_match_pandas_quantiles_on_distinct_values(spark: SparkSession) -> None:
    import numpy as np

    rows = [(f"c{i:03d}", i + 1, i + 1, Decimal(i + 1), "DE") for i in range(100)]
    out, info = score_quantile(features(spark, rows), bins=4, relative_error=0.0001)
    got = {r["frequency"]: r["f_score"] for r in out.collect()}
    cuts = np.quantile(np.arange(1, 101), [0.25, 0.5, 0.75], method="inverted_cdf")
    assert info.cut_points["f"][""] == [float(c) for c in cuts]
    assert got == {v: 1 + int((cuts < v).sum()) for v in range(1, 101)}


def test_quantile_within_groups(spark: SparkSession) -> None:
    rows = [(f"d{i:03d}", 1, i, Decimal(1), "DE") for i in range(10)]
    rows += [(f"f{i:03d}", 1, 100 + i, Decimal(1), "FR") for i in range(10)]
    out, info = score_quantile(
        features(spark, rows), bins=2, partition_by=["country"], relative_error=0.0001
    )
    got = {r["customer_id"]: r["f_score"] for r in out.collect()}
    # each country has its own low and high half
    assert sorted(got[f"d{i:03d}"] for i in range(10)) == [1] * 5 + [2] * 5
    assert sorted(got[f"f{i:03d}"] for i in range(10)) == [1] * 5 + [2] * 5
    assert set(info.cut_points["f"]) == {"DE", "FR"}


def test_thresholds_semantics(spark: SparkSession) -> None:
    t = Thresholds(
        recency=[30, 90, 180, 365], frequency=[2, 3, 5, 10], monetary=[50, 100, 200, 500]
    )
    rows = [
        ("a", 30, 1, Decimal("49.99"), None),
        ("b", 31, 2, Decimal("50.00"), None),
        ("c", 365, 10, Decimal("500.00"), None),
        ("d", 366, 9, Decimal("499.99"), None),
    ]
    out, info = score_thresholds(features(spark, rows), bins=5, thresholds=t)
    assert scores_of(out) == {"a": (5, 1, 1), "b": (4, 2, 2), "c": (2, 5, 5), "d": (1, 4, 4)}
    assert info.cut_points["r"][""] == [30.0, 90.0, 180.0, 365.0]


def test_score_dispatch_names_missing_columns(spark: SparkSession) -> None:
    df = spark.createDataFrame([("a", 1)], "customer_id string, frequency bigint")
    with pytest.raises(Exception, match=r"missing column.*monetary.*recency_days"):
        score(df, ScoringSettings())
