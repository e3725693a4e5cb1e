"""Predictive segments (rfm_spark.clustering) on generated data with planted personas.

One small data set (1,500 customers, 500 days) is generated for the module; the models are
trained on its features at the end date (and 28 days earlier for the retrain test).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from _procs import fast_jvm_env
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.cli.render import k_scores_table
from rfm_spark.clustering import (
    FEATURES,
    PROFILE_COLUMNS,
    ClusterModel,
    KScore,
    ModelError,
    TrainResult,
    assign_clusters,
    cluster_profiles,
    match_clusters,
    name_clusters,
    train,
)
from rfm_spark.config import InputSettings
from rfm_spark.datagen import PERSONAS
from rfm_spark.errors import ConfigError, MissingColumnsError
from rfm_spark.features import daily_aggregates, rfm_features
from rfm_spark.io import registry
from rfm_spark.io.demo_data import generate
from rfm_spark.io.inputs import read_transactions
from rfm_spark.io.models import load_model, save_model
from rfm_spark.io.store import open_store

pytestmark = pytest.mark.slow

END = dt.date(2026, 11, 23)
EARLIER = END - dt.timedelta(days=28)
LOOKBACK = 365
REPO = Path(__file__).resolve().parents[1]


# ---- helpers --------------------------------------------------------------------------------


def adjusted_rand_index(labels_a: pd.Series, labels_b: pd.Series) -> float:
    """Hubert & Arabie's adjusted Rand index from the contingency table."""

    def pairs(n: pd.Series | pd.DataFrame) -> float:
        return float((n * (n - 1) / 2).to_numpy().sum())

    table = pd.crosstab(labels_a, labels_b)
    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    total = pairs(pd.Series([int(table.to_numpy().sum())]))
    expected = rows * cols / total
    return (index - expected) / ((rows + cols) / 2 - expected)


def test_adjusted_rand_index_helper() -> None:
    a = pd.Series([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, a.map({0: 5, 1: 3, 2: 9})) == pytest.approx(1.0)
    # the worked example of Hubert & Arabie / scikit-learn's docs: [0,0,1,1] vs [0,0,1,2] = 0.571
    assert adjusted_rand_index(pd.Series([0, 0, 1, 1]), pd.Series([0, 0, 1, 2])) == pytest.approx(
        4 / 7
    )


def persona_clusters(assigned: DataFrame) -> dict[str, int]:
    """The cluster holding most customers of each persona."""
    pdf = assigned.select("persona", "cluster_id").toPandas()
    return {str(p): int(g.mode().iloc[0]) for p, g in pdf.groupby("persona")["cluster_id"]}


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster_demo")
    generate(spark, str(out), customers=1500, days=500, end_date=END, seed=7)
    return out


def _features(spark: SparkSession, demo: Path, snapshot: dt.date) -> DataFrame:
    tx = read_transactions(spark, InputSettings(path=str(demo / "transactions")))
    daily = daily_aggregates(tx.filter(tx["reject_reason"].isNull()))
    personas = spark.read.parquet(str(demo / "customers")).select("customer_id", "persona")
    return (
        rfm_features(daily, snapshot_date=snapshot, lookback_days=LOOKBACK)
        .join(personas, on="customer_id", how="left")
        .cache()
    )


@pytest.fixture(scope="module")
def features(spark: SparkSession, demo: Path) -> Iterator[DataFrame]:
    df = _features(spark, demo, END)
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def trained(features: DataFrame) -> TrainResult:
    return train(features, snapshot_date=END, k=6, seed=42, max_iter=20)


# ---- training and persona recovery -----------------------------------------------------------


def test_kmeans_recovers_the_planted_personas(features: DataFrame, trained: TrainResult) -> None:
    model = trained.model
    assigned = assign_clusters(features, model)
    pdf = assigned.select("customer_id", "persona", "cluster_id", "cluster_name").toPandas()
    assert len(pdf) == features.count()
    assert pdf["persona"].notna().all()
    assert pdf["cluster_id"].notna().all() and pdf["cluster_name"].notna().all()
    ari = adjusted_rand_index(pdf["persona"], pdf["cluster_id"])
    print(f"\nk-means k=6: adjusted Rand index vs persona = {ari:.3f}; {trained.reason}")
    print(pd.crosstab(pdf["persona"], pdf["cluster_name"]).to_string())
    assert ari >= 0.5
    assert model.k == 6 and sorted(model.centroids) == [1, 2, 3, 4, 5, 6]
    assert sorted(model.id_map.values()) == [1, 2, 3, 4, 5, 6]
    assert set(model.names) == set(model.centroids)
    assert model.features == FEATURES and model.algorithm == "kmeans" and model.seed == 42
    assert 0.0 < model.silhouette <= 1.0 and model.sample_rows == len(pdf)
    assert trained.scores == [KScore(6, model.silhouette, trained.scores[0].cost)]
    assert trained.scores[0].cost is not None and trained.scores[0].cost > 0
    assert trained.appeared == [] and trained.vanished == [] and trained.matched == {}
    # centroids are in original units: the one-time buyers' centroid has about one order
    one_time = persona_clusters(assigned)["one_time_buyers"]
    assert model.centroids[one_time]["frequency"] == pytest.approx(1.0, abs=0.2)
    assert model.centroids[one_time]["recency_days"] > 90


def test_cluster_names_are_unique_and_readable(features: DataFrame, trained: TrainResult) -> None:
    names = trained.model.names
    assert len(set(names.values())) == len(names)
    for name in names.values():
        assert re.fullmatch(r"[a-z][a-z -]*(, [a-z]+)?( \(\d\))?", name), name
    by_persona = persona_clusters(assign_clusters(features, trained.model))
    champions = names[by_persona["champions"]]
    one_time = names[by_persona["one_time_buyers"]]
    assert champions.startswith("high value"), names
    assert one_time.startswith("one-time"), names
    assert names[by_persona["frequent_small_spenders"]].startswith("frequent small"), names


def test_name_clusters_from_centroids_relative_to_the_population() -> None:
    population = {"recency_days": 33.0, "frequency": 8.0, "monetary": 345.0}
    centroids = {
        1: {"recency_days": 8.0, "frequency": 22.0, "monetary": 4100.0},
        2: {"recency_days": 102.0, "frequency": 20.0, "monetary": 2000.0},
        3: {"recency_days": 48.0, "frequency": 5.7, "monetary": 490.0},
        4: {"recency_days": 8.0, "frequency": 26.0, "monetary": 320.0},
        5: {"recency_days": 10.0, "frequency": 1.6, "monetary": 54.0},
        6: {"recency_days": 190.0, "frequency": 1.0, "monetary": 36.0},
        7: {"recency_days": 200.0, "frequency": 1.0, "monetary": 30.0},
        8: {"recency_days": 12.0, "frequency": 2.5, "monetary": 90.0},
    }
    assert name_clusters(centroids, population) == {
        1: "high value, active",
        2: "lapsed big spenders",
        3: "regular mid spenders, cooling",
        4: "frequent small spenders, active",
        5: "recent first-time buyers",
        6: "one-time low spenders",
        7: "one-time low spenders (2)",
        8: "occasional low spenders, active",
    }
    # names kept from a previous model are not handed out again
    assert name_clusters({9: centroids[1]}, population, taken=["high value, active"]) == {
        9: "high value, active (2)"
    }


def test_k_range_picks_the_best_silhouette_and_prints_the_table(features: DataFrame) -> None:
    result = train(
        features,
        snapshot_date=END,
        k_min=4,
        k_max=6,
        sample_fraction=0.8,
        seed=3,
        n_init=1,
        max_iter=10,
    )
    scores = result.scores
    assert [s.k for s in scores] == [4, 5, 6]
    assert all(not math.isnan(s.silhouette) and s.cost is not None for s in scores)
    best = max(scores, key=lambda s: (s.silhouette, -s.k))
    assert result.model.k == best.k
    assert result.model.silhouette == pytest.approx(best.silhouette)
    assert f"k={best.k} has the highest silhouette" in result.reason
    customers = features.count()
    assert 0.6 * customers < result.model.sample_rows < customers
    table = k_scores_table(scores, result.model.k)
    print("\n" + table + "\n" + result.reason)
    lines = table.splitlines()
    assert lines[0].split() == ["k", "silhouette", "cost"]
    assert len(lines) == 5  # header, dashes, one row per k
    chosen = [line for line in lines[2:] if line.rstrip().endswith("*")]
    assert len(chosen) == 1 and chosen[0].split()[0] == str(best.k)
    assert f"{best.silhouette:.4f}" in chosen[0]


def test_retrain_with_another_seed_on_another_snapshot_keeps_cluster_ids(
    spark: SparkSession, demo: Path, features: DataFrame, trained: TrainResult
) -> None:
    first = trained.model  # seed 42, snapshot END
    before = persona_clusters(assign_clusters(features, first))
    other = _features(spark, demo, EARLIER)
    try:
        second = train(other, snapshot_date=EARLIER, k=6, seed=7, max_iter=20, previous=first)
        assigned = assign_clusters(other, second.model).select("persona", "cluster_id").toPandas()
    finally:
        other.unpersist()
    after = {str(p): int(g.mode().iloc[0]) for p, g in assigned.groupby("persona")["cluster_id"]}
    ari = adjusted_rand_index(assigned["persona"], assigned["cluster_id"])
    print(f"\npersona -> cluster id, seed 42 at {END}: {before}")
    print(f"persona -> cluster id, seed 7 at {EARLIER}: {after} (ARI {ari:.3f})")
    print(f"matched (id: centroid distance) {second.matched}")
    assert set(before) == set(PERSONAS)
    assert len(set(before.values())) == len(PERSONAS), "each persona has its own cluster"
    assert after == before
    assert sorted(second.matched) == sorted(first.centroids)
    assert all(d <= 1.0 for d in second.matched.values())
    assert second.appeared == [] and second.vanished == []
    # names keep their meaning too: the matched clusters keep the previous model's names
    assert second.model.names == first.names
    assert second.model.next_id == first.next_id
    assert second.model.previous_version == first.version


def test_match_clusters_hungarian_with_appearing_and_vanishing_clusters() -> None:
    old = {1: [0.0, 0.0], 2: [5.0, 0.0], 3: [0.0, 5.0]}
    new = {0: [5.2, 0.1], 1: [0.1, -0.1], 2: [9.0, 9.0]}
    assert match_clusters(new, old, max_distance=1.0) == {0: 2, 1: 1, 2: 4}  # 3 vanished
    assert match_clusters(new, old, max_distance=1.0, first_free_id=10) == {0: 2, 1: 1, 2: 10}
    # without a limit every new cluster gets a partner while old ones remain
    assert match_clusters(new, old) == {0: 2, 1: 1, 2: 3}
    # a fourth cluster beyond the old ones always gets a fresh id
    assert match_clusters({**new, 7: [0.0, 5.0]}, old)[7] == 3
    assert match_clusters({**new, 7: [0.0, 5.0]}, old)[2] == 4
    # the minimum total distance, not greedy nearest: x is nearest to B but goes to A
    assert match_clusters({0: [1.1], 1: [3.5]}, {10: [0.0], 20: [2.0]}) == {0: 10, 1: 20}
    # no previous clusters: fresh ids from 1 in the order given
    assert match_clusters({5: [1.0], 3: [2.0]}, {}) == {5: 1, 3: 2}


@pytest.mark.parametrize("algorithm", ["bisecting_kmeans", "gaussian_mixture"])
def test_other_algorithms_train_and_assign_every_customer(
    features: DataFrame, algorithm: str
) -> None:
    result = train(
        features,
        snapshot_date=END,
        k=4,
        algorithm=algorithm,
        n_init=1,
        max_iter=10,
        max_sample_rows=700,
    )
    model = result.model
    customers = features.count()
    assert model.algorithm == algorithm and 2 <= model.k <= 4
    assert model.sample_rows < customers  # capped by max_sample_rows, about 700
    assert (result.scores[0].cost is None) == (algorithm == "gaussian_mixture")
    assigned = assign_clusters(features, model)
    counts = assigned.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("cluster_id").alias("with_id"),
        F.count("cluster_name").alias("with_name"),
        F.count_distinct("customer_id").alias("customers"),
    ).first()
    assert counts is not None
    assert tuple(counts) == (customers, customers, customers, customers)
    used = {r["cluster_id"] for r in assigned.select("cluster_id").distinct().collect()}
    assert used <= set(model.centroids) and len(used) >= 2


# ---- assignment, profiles, saving and loading -----------------------------------------------


def test_assign_without_a_model_gives_nulls_for_every_row(features: DataFrame) -> None:
    with_old = features.withColumn("cluster_id", F.lit(3))  # replaced, not duplicated
    assigned = assign_clusters(with_old, None)
    assert assigned.columns == [*features.columns, "cluster_id", "cluster_name"]
    assert assigned.schema["cluster_id"].dataType == T.IntegerType()
    assert assigned.schema["cluster_name"].dataType == T.StringType()
    row = assigned.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("cluster_id").alias("ids"),
        F.count("cluster_name").alias("names"),
    ).first()
    assert row is not None and tuple(row) == (features.count(), 0, 0)


def test_assign_keeps_rows_with_null_or_negative_features(
    spark: SparkSession, trained: TrainResult
) -> None:
    rows = spark.createDataFrame(
        [("a", 3, 10, "250.00"), ("b", None, None, None), ("c", 200, 1, "-40.00")],
        "customer_id string, recency_days int, frequency bigint, monetary string",
    ).withColumn("monetary", F.col("monetary").cast("decimal(18,2)"))
    out = assign_clusters(rows, trained.model).orderBy("customer_id").collect()
    assert [r["customer_id"] for r in out] == ["a", "b", "c"]
    assert all(r["cluster_id"] in trained.model.names for r in out)
    assert all(r["cluster_name"] == trained.model.names[r["cluster_id"]] for r in out)


def test_assign_needs_the_feature_columns(spark: SparkSession, trained: TrainResult) -> None:
    df = spark.createDataFrame([("a", 1)], "customer_id string, recency_days int")
    with pytest.raises(MissingColumnsError, match="frequency, monetary"):
        assign_clusters(df, trained.model)


def test_profiles_cover_every_cluster_and_write_to_delta(
    spark: SparkSession, features: DataFrame, trained: TrainResult, tmp_path: Path
) -> None:
    saved = save_model(trained, str(tmp_path / "wh"))
    assigned = assign_clusters(features, saved)
    profiles = cluster_profiles(assigned, saved)
    assert tuple(profiles.columns) == PROFILE_COLUMNS
    assert profiles.schema["model_version"].dataType == T.StringType()
    pdf = profiles.toPandas()
    assert pdf["cluster_id"].tolist() == sorted(saved.centroids)
    assert pdf["cluster_name"].tolist() == [saved.names[i] for i in sorted(saved.names)]
    assert pdf["customers"].sum() == features.count()
    assert pdf["revenue_share"].sum() == pytest.approx(1.0)
    assert (pdf["model_version"] == "1").all()
    expected = (
        assigned.groupBy("cluster_id")
        .agg(F.avg("recency_days").alias("r"), F.sum("monetary").alias("m"))
        .toPandas()
        .set_index("cluster_id")
    )
    total = float(features.agg(F.sum("monetary")).first()[0])  # type: ignore[index]
    for _, row in pdf.iterrows():
        assert row["mean_recency_days"] == pytest.approx(expected.loc[row["cluster_id"], "r"])
        assert row["revenue_share"] == pytest.approx(
            float(expected.loc[row["cluster_id"], "m"]) / total
        )

    table = str(tmp_path / "wh" / "cluster_profiles")
    version = open_store(spark).write_partition(
        profiles,
        table,
        partition_column="model_version",
        partition_value=str(saved.version),
        metadata={"model_version": str(saved.version)},
    )
    assert version == 0
    back = DeltaTable(table).to_pandas().sort_values("cluster_id").reset_index(drop=True)
    assert list(back.columns) == list(PROFILE_COLUMNS)
    pd.testing.assert_frame_equal(
        back[list(PROFILE_COLUMNS)], pdf, check_dtype=False, check_categorical=False
    )


def test_a_cluster_without_customers_still_has_a_profile_row(
    spark: SparkSession, features: DataFrame, trained: TrainResult
) -> None:
    model = trained.model
    few = assign_clusters(features, model).filter(F.col("cluster_id") == 1)
    pdf = cluster_profiles(few, model).toPandas()
    assert pdf["cluster_id"].tolist() == sorted(model.centroids)
    assert pdf.set_index("cluster_id").loc[2, "customers"] == 0
    assert pdf.set_index("cluster_id").loc[1, "revenue_share"] == pytest.approx(1.0)
    assert pd.isna(pdf.set_index("cluster_id").loc[2, "mean_monetary"])
    assert (pdf["model_version"] == "0").all()  # not saved


FRESH_SESSION_SCRIPT = """
import sys

from rfm_spark.clustering import assign_clusters
from rfm_spark.io.models import load_model
from rfm_spark.config import SparkSettings
from rfm_spark.session import build_spark

warehouse, features, out = sys.argv[1:4]
spark = build_spark(
    SparkSettings(
        master="local[1]",
        app_name="rfm-spark-fresh-session",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            # a short-lived JVM: the quick JIT tier halves its run time
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    )
)
model = load_model(spark, warehouse)
assert model is not None and model.pipeline is not None
assigned = assign_clusters(spark.read.parquet(features), model)
assigned.select("customer_id", "cluster_id", "cluster_name").write.parquet(out)
print(model.version, model.k, model.snapshot_date)
spark.stop()
"""


def test_save_load_in_a_fresh_session_gives_identical_assignments(
    spark: SparkSession, features: DataFrame, trained: TrainResult, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    assert load_model(spark, str(warehouse)) is None
    first = save_model(trained, str(warehouse))
    saved = save_model(trained.model, str(warehouse))  # a second version becomes current
    assert (first.version, saved.version) == (1, 2)
    assert saved.path.endswith("models/rfm_clusters/v2")
    # the model_versions table, read by deltalake: both versions, their folders and metadata
    listed = DeltaTable(str(warehouse / "model_versions")).to_pandas().sort_values("version")
    assert listed[["kind", "version"]].values.tolist() == [["rfm_clusters", 1], ["rfm_clusters", 2]]
    assert listed["path"].tolist() == [first.path, saved.path]
    meta = json.loads(listed["metadata"].iloc[0])
    assert meta["model_version"] == 1 and meta["snapshot_date"] == END.isoformat()
    assert meta["k"] == 6 and meta["features"] == list(FEATURES)
    assert meta["silhouette"] == pytest.approx(trained.model.silhouette)
    assert set(meta["centroids"]) == {"1", "2", "3", "4", "5", "6"}
    assert set(meta["centroids"]["1"]) == set(FEATURES)
    assert meta["training"]["reason"] == trained.reason
    assert meta["training"]["scores"][0]["k"] == 6

    loaded = load_model(spark, str(warehouse))
    assert loaded == saved  # all metadata round-trips (the pipeline is not compared)
    assert load_model(spark, str(warehouse), version=1) == first

    expected = (
        assign_clusters(features, trained.model)
        .select("customer_id", "cluster_id", "cluster_name")
        .toPandas()
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    in_process = (
        assign_clusters(features, loaded)
        .select("customer_id", "cluster_id", "cluster_name")
        .toPandas()
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(in_process, expected)

    features.drop("persona").write.parquet(str(tmp_path / "features"))
    script = tmp_path / "assign.py"
    script.write_text(textwrap.dedent(FRESH_SESSION_SCRIPT))
    env = {k: v for k, v in fast_jvm_env().items() if not k.startswith("PYSPARK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(warehouse),
            str(tmp_path / "features"),
            str(tmp_path / "fresh"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["2", "6", END.isoformat()]
    fresh = (
        pd.read_parquet(tmp_path / "fresh")
        .sort_values("customer_id")
        .reset_index(drop=True)[["customer_id", "cluster_id", "cluster_name"]]
    )
    pd.testing.assert_frame_equal(fresh, expected, check_dtype=False)


def test_load_model_errors_name_the_problem(spark: SparkSession, tmp_path: Path) -> None:
    warehouse = str(tmp_path)
    with pytest.raises(ModelError, match="version 3 not found: no version saved yet"):
        load_model(spark, warehouse, version=3)
    folder = registry.model_folder(warehouse, "rfm_clusters", 1)
    registry.record(spark, warehouse, "rfm_clusters", 1, {"format": 1, "k": 6}, path=folder)
    with pytest.raises(ModelError, match=r"version 3 not found \(versions: v1\)"):
        load_model(spark, warehouse, version=3)
    with pytest.raises(ModelError, match="KeyError"):
        load_model(spark, warehouse)
    with pytest.raises(ModelError, match="version 1 was saved meanwhile"):
        registry.record(spark, warehouse, "rfm_clusters", 1, {}, path=folder)


def test_train_rejects_bad_arguments(features: DataFrame) -> None:
    with pytest.raises(ConfigError, match="unknown clustering algorithm 'dbscan'"):
        train(features, snapshot_date=END, algorithm="dbscan")
    with pytest.raises(ConfigError, match="--k must be at least 2"):
        train(features, snapshot_date=END, k=1)
    with pytest.raises(ConfigError, match="k-min 6, k-max 4"):
        train(features, snapshot_date=END, k_min=6, k_max=4)
    with pytest.raises(ConfigError, match="sample fraction"):
        train(features, snapshot_date=END, sample_fraction=0.0)
    with pytest.raises(MissingColumnsError, match="monetary"):
        train(features.drop("monetary"), snapshot_date=END)


def test_model_dataclass_round_trips_its_metadata(trained: TrainResult) -> None:
    meta = trained.model.metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert isinstance(trained.model, ClusterModel)
    assert meta["id_map"] == {str(r): i for r, i in trained.model.id_map.items()}
