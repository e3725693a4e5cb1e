"""End to end on generated data: features against pandas, the CLI writing a Delta table that
independent readers (deltalake, DuckDB) read back."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.config import InputSettings
from rfm_spark.features import daily_aggregates, rfm_features
from rfm_spark.io.inputs import read_transactions
from rfm_spark.schemas import OUTPUT_SCHEMA

pytestmark = pytest.mark.slow

END = dt.date(2026, 11, 23)
SNAPSHOT = dt.date(2026, 11, 1)
LOOKBACK = 365


def pandas_features(tx: pd.DataFrame, snapshot: dt.date, lookback: int) -> pd.DataFrame:
    """The feature definitions of docs/tables.md, written directly over the transactions (no daily aggregates)."""
    tx = tx.copy()
    tx["day"] = pd.to_datetime(tx["order_ts"], utc=True).dt.tz_convert("UTC").dt.date
    start = snapshot - dt.timedelta(days=lookback)
    w = tx[(tx["day"] >= start) & (tx["day"] < snapshot)]
    rows = []
    for cid, g in w.groupby("customer_id"):
        buys = g[g["amount"] > 0]
        days = buys["day"] if len(buys) else g["day"]
        monetary = sum(g["amount"], Decimal("0"))
        freq = buys["order_id"].nunique()
        rows.append(
            {
                "customer_id": cid,
                "recency_days": (snapshot - max(days)).days,
                "frequency": freq,
                "monetary": monetary,
                "purchase_days": buys["day"].nunique(),
                "avg_order_value": (monetary / freq).quantize(Decimal("0.01"), "ROUND_HALF_UP")
                if freq
                else None,
                "first_purchase_date": min(days),
                "last_purchase_date": max(days),
                "tenure_days": (snapshot - min(days)).days,
                "flag": "returns_only"
                if freq == 0
                else ("non_positive_spend" if monetary <= 0 else None),
            }
        )
    return pd.DataFrame(rows).set_index("customer_id").sort_index()


def test_features_equal_pandas_on_generated_data(spark: SparkSession, demo: Path) -> None:
    tx = pd.read_parquet(demo / "transactions")
    assert (tx["amount"] < 0).any(), "the generator plants returns"
    expected = pandas_features(tx, SNAPSHOT, LOOKBACK)
    canonical = read_transactions(spark, InputSettings(path=str(demo / "transactions")))
    assert canonical.filter(canonical["reject_reason"].isNotNull()).count() == 0
    ours = rfm_features(
        daily_aggregates(canonical),
        snapshot_date=SNAPSHOT,
        lookback_days=LOOKBACK,
    )
    got = ours.toPandas().set_index("customer_id").sort_index()
    assert list(got.index) == list(expected.index)
    for col in expected.columns:
        assert got[col].tolist() == expected[col].tolist(), col
    assert (got["flag"] == "returns_only").any(), "returns-only customers are kept and flagged"


def run_segment_cli(demo: Path, warehouse: Path, *extra: str) -> int:
    return main(
        [
            "segment",
            "--snapshot-date",
            SNAPSHOT.isoformat(),
            "--input",
            str(demo / "transactions"),
            "--customers-input",
            str(demo / "customers"),
            "--warehouse",
            str(warehouse),
            "--quiet",
            *extra,
        ]
    )


def test_segment_cli_writes_delta_read_back_independently(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deltalake import DeltaTable

    tx = pd.read_parquet(demo / "transactions")
    expected_customers = len(pandas_features(tx, SNAPSHOT, LOOKBACK))

    assert run_segment_cli(demo, tmp_path) == 0
    out = capsys.readouterr().out
    assert "champions" in out and "version 0" in out
    table = DeltaTable(str(tmp_path / "customer_segments"))
    df = table.to_pandas()
    assert len(df) == expected_customers
    assert df["customer_id"].is_unique
    assert list(df.columns) == [f.name for f in OUTPUT_SCHEMA.fields]
    assert table.metadata().partition_columns == ["snapshot_date"]
    assert set(df["segment"]) <= set(
        __import__("rfm_spark.segments").segments.load_scheme("rfm11").segments
    )
    assert df["rfm_code"].tolist() == [
        f"{r}{f}{m}" for r, f, m in zip(df.r_score, df.f_score, df.m_score, strict=False)
    ]

    # a rerun of the same date replaces the partition: one copy of each customer, a new version;
    # --json prints what an orchestrator needs as one JSON document
    assert run_segment_cli(demo, tmp_path, "--scoring", "quantile", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    table = DeltaTable(str(tmp_path / "customer_segments"))
    assert table.version() == 1
    again = table.to_pandas()
    assert len(again) == expected_customers and again["customer_id"].is_unique
    assert again["run_id"].nunique() == 1 and again["run_id"].iloc[0] != df["run_id"].iloc[0]
    meta = json.loads(table.history(1)[0]["userMetadata"])
    assert meta["scoring_method"] == "quantile" and meta["snapshot_date"] == SNAPSHOT.isoformat()
    recon = json.loads(meta["reconciliation"])
    assert (printed["command"], printed["status"], printed["version"]) == ("segment", "ok", 1)
    assert printed["run_id"] == again["run_id"].iloc[0] == meta["run_id"]
    assert printed["reconciliation"] == recon and printed["customers"] == expected_customers
    assert sum(s["customers"] for s in printed["summary"]) == expected_customers
    assert recon["input_rows"] == len(tx)
    assert recon["input_rows"] == recon["used"] + recon["before_window"] + recon[
        "after_snapshot"
    ] + sum(recon["quarantined"].values())
    assert int(meta["output_rows"]) == expected_customers


def test_segment_scores_equal_spark_ntile_end_to_end(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    from deltalake import DeltaTable
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    assert run_segment_cli(demo, tmp_path, "--partition-by", "country") == 0
    written = spark.createDataFrame(DeltaTable(str(tmp_path / "customer_segments")).to_pandas())
    customers = spark.read.parquet(str(demo / "customers")).select("customer_id", "country")
    feats = written.join(customers, "customer_id", "left")
    part = W.partitionBy(F.coalesce("country", F.lit("(null)")))
    ref = feats.select(
        "customer_id",
        F.ntile(5).over(part.orderBy(F.col("recency_days").desc(), "customer_id")).alias("r"),
        F.ntile(5).over(part.orderBy("frequency", "customer_id")).alias("f"),
        F.ntile(5).over(part.orderBy("monetary", "customer_id")).alias("m"),
        "r_score",
        "f_score",
        "m_score",
        "score_group",
        "country",
    )
    bad = ref.filter(
        (F.col("r") != F.col("r_score"))
        | (F.col("f") != F.col("f_score"))
        | (F.col("m") != F.col("m_score"))
    )
    assert bad.count() == 0
    assert ref.filter(F.col("score_group") != F.coalesce("country", F.lit("(null)"))).count() == 0


def test_train_then_segment_assigns_clusters_and_cluster_transitions(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deltalake import DeltaTable

    from rfm_spark.clustering import assign_clusters
    from rfm_spark.io.models import load_model

    common = ["--warehouse", str(tmp_path), "--quiet"]

    def segment(day: str) -> int:
        return main(
            ["segment", "--snapshot-date", day, "--input", str(demo / "transactions"), *common]
        )

    def snapshot(day: str) -> pd.DataFrame:
        df = DeltaTable(str(tmp_path / "customer_segments")).to_pandas()
        return df[df["snapshot_date"].astype(str) == day].set_index("customer_id").sort_index()

    assert segment("2026-10-01") == 0
    assert snapshot("2026-10-01")["cluster_id"].isna().all()  # no model yet: null, not an error

    assert main(["train", "--snapshot-date", "2026-10-01", "--k", "6", *common]) == 0
    out = capsys.readouterr().out
    assert "silhouette" in out and "model v1" in out

    assert segment("2026-10-15") == 0
    later = snapshot("2026-10-15")
    assert later["cluster_id"].notna().all() and later["cluster_name"].notna().all()
    meta = json.loads(DeltaTable(str(tmp_path / "customer_segments")).history(1)[0]["userMetadata"])
    assert meta["cluster_model_version"] == "1"
    # the committed clusters are the model's assignment of the committed features
    model = load_model(spark, str(tmp_path))
    feats = spark.createDataFrame(
        later.reset_index()[["customer_id", "recency_days", "frequency", "monetary"]]
    )
    expected = {r["customer_id"]: r["cluster_id"] for r in assign_clusters(feats, model).collect()}
    assert later["cluster_id"].astype(int).to_dict() == expected
    profiles = DeltaTable(str(tmp_path / "cluster_profiles")).to_pandas()
    assert len(profiles) == 6 and profiles["customers"].sum() > 0

    assert segment("2026-10-01") == 0  # rerun: the earlier snapshot gets clusters too
    result = tmp_path / "clusters.parquet"
    args = ["transitions", "--as-of", "2026-10-15", "--days", "14", "--by", "cluster"]
    assert main([*args, "--output", str(result), *common]) == 0
    got = pd.read_parquet(result).set_index(["from_segment", "to_segment"])["customers"].to_dict()
    a, b = snapshot("2026-10-01"), snapshot("2026-10-15")
    joined = a[["cluster_name"]].join(b[["cluster_name"]], how="outer", lsuffix="_a", rsuffix="_b")
    joined = joined.fillna({"cluster_name_a": "(new)", "cluster_name_b": "(gone)"})
    expected_counts = joined.groupby(["cluster_name_a", "cluster_name_b"]).size().to_dict()
    assert got == expected_counts
