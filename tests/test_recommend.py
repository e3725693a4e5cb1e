"""Recommendations: the hold-out, popularity, precision and dominant category against answers
worked out by hand, then `rfm-spark recommend` on generated data: ALS beats the most popular
products at precision@10, the baseline equals pandas' recomputation, and the table read back
with deltalake holds each customer's ranked products and their dominant category."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.recommend import dominant_category, holdout, popular, precision_at_k

END = dt.date(2026, 11, 23)
D1, D2, D3 = (dt.date(2026, 1, d) for d in (1, 2, 3))


def test_holdout_popularity_precision_and_category_by_hand(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("a", "p1", D1), ("a", "p2", D1), ("a", "p3", D3), ("a", "p1", D3),
         ("b", "p1", D2),  # one purchase day: all training
         ("c", "p2", D1), ("c", "p4", D2)],
        "customer_id string, product_id string, order_date date",
    )  # fmt: skip
    train, held = holdout(rows)
    assert sorted(map(tuple, held.collect())) == [("a", "p1"), ("a", "p3"), ("c", "p4")]
    assert sorted((r[0], r[1]) for r in train.collect()) == [
        ("a", "p1"), ("a", "p2"), ("b", "p1"), ("c", "p2")
    ]  # fmt: skip
    # p1 and p2 both have two customers: the smaller id first
    assert [(r[0], r[1]) for r in popular(train, 2).orderBy("rank").collect()] == [
        ("p1", 1), ("p2", 2)
    ]  # fmt: skip
    recs = spark.createDataFrame(
        [("a", "p3", 1), ("a", "p9", 2), ("c", "p8", 1), ("c", "p4", 3)],
        "customer_id string, product_id string, rank int",
    )
    got = precision_at_k(recs, held, 2).first()
    assert got is not None and got["customers"] == 2
    assert got["precision"] == pytest.approx((1 / 2 + 0 / 2) / 2)  # c's p4 is ranked 3rd
    categories = spark.createDataFrame(
        [("p3", "x"), ("p9", "y"), ("p8", "y"), ("p4", "x")], "product_id string, category string"
    )
    got_c = {r[0]: r[1] for r in dominant_category(recs, categories).collect()}
    assert got_c == {"a": "x", "c": "y"}  # one each: the better-ranked one's category


def pandas_baseline(tx: pd.DataFrame) -> float:
    """precision@10 of the 10 most popular products, from the raw rows."""
    tx = tx[tx["amount"].astype(float) > 0].assign(
        day=pd.to_datetime(tx["order_ts"], utc=True).dt.date
    )
    tx = tx[(tx["day"] < END) & (tx["day"] >= END - dt.timedelta(days=365))]
    last = tx.groupby("customer_id")["day"].transform("max")
    first = tx.groupby("customer_id")["day"].transform("min")
    held = (tx["day"] == last) & (last > first)
    counts = tx[~held].groupby("product_id")["customer_id"].nunique()
    top = set(counts.reset_index().sort_values(["customer_id", "product_id"],
                                                ascending=[False, True])["product_id"][:10])  # fmt: skip
    bought = tx[held].groupby("customer_id")["product_id"].apply(set)
    return float(bought.map(lambda s: len(s & top) / 10).mean())


def test_recommend_beats_the_most_popular_products(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--snapshot-date", str(END), "--input", str(demo / "transactions")]
    flags += ["--products-input", str(demo / "products"), "--warehouse", str(tmp_path), "--quiet"]
    assert main(["recommend", *flags]) == 0
    printed = capsys.readouterr().out
    ours = float(next(x for x in printed.splitlines() if x.startswith("ALS ")).split()[-1])
    theirs = float(next(x for x in printed.splitlines() if x.startswith("10 most")).split()[-1])
    tx = pd.read_parquet(demo / "transactions")
    assert theirs == pytest.approx(pandas_baseline(tx), abs=5e-5)
    assert ours > theirs, printed

    table = DeltaTable(str(tmp_path / "customer_recommendations")).to_pandas()
    assert (
        table.groupby("customer_id")["rank"]
        .apply(sorted)
        .map(lambda r: r == list(range(1, 11)))
        .all()
    )
    products = pd.read_parquet(demo / "products").set_index("product_id")["category"]
    assert (table["category"] == table["product_id"].map(products)).all()
    for _, mine in table.groupby("customer_id"):
        counts = mine.groupby("category")["rank"].agg(["size", "min"])
        best = counts.sort_values(["size", "min"], ascending=[False, True]).index[0]
        assert (mine["recommended_category"] == best).all()
