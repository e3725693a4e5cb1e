"""Tests of the demo / benchmark data generator (rfm_spark.datagen) on its actual output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark import datagen
from rfm_spark.datagen.distributions import Draws, element, geometric, pick, poisson
from rfm_spark.errors import UsageError
from rfm_spark.io.demo_data import GenerateSummary, generate
from rfm_spark.io.files import write_text

END = dt.date(2026, 11, 23)
DAYS = 730
CUSTOMERS = 1500
SEED = 11
PRODUCTS = 120

TRANSACTIONS_TYPES = [
    ("customer_id", T.StringType()),
    ("order_id", T.StringType()),
    ("line_no", T.IntegerType()),
    ("order_ts", T.TimestampType()),
    ("amount", T.DecimalType(12, 2)),
    ("product_id", T.StringType()),
    ("quantity", T.IntegerType()),
    ("channel", T.StringType()),
]
CUSTOMERS_TYPES = [
    ("customer_id", T.StringType()),
    ("persona", T.StringType()),
    ("age", T.IntegerType()),
    ("gender", T.StringType()),
    ("country", T.StringType()),
    ("region", T.StringType()),
    ("city", T.StringType()),
    ("signup_date", T.DateType()),
    ("preferred_channel", T.StringType()),
    ("email_opt_in", T.BooleanType()),
    ("push_opt_in", T.BooleanType()),
    ("sms_opt_in", T.BooleanType()),
    ("interests", T.ArrayType(T.StringType())),
]
PRODUCTS_TYPES = [
    ("product_id", T.StringType()),
    ("category", T.StringType()),
    ("price", T.DecimalType(12, 2)),
]


@pytest.fixture(scope="module")
def generated(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[GenerateSummary, Path]:
    out = tmp_path_factory.mktemp("datagen") / "demo"
    summary = generate(
        spark,
        str(out),
        customers=CUSTOMERS,
        days=DAYS,
        end_date=END,
        seed=SEED,
        products=PRODUCTS,
        partitions=3,
    )
    return summary, out


@pytest.fixture(scope="module")
def frames(generated: tuple[GenerateSummary, Path]) -> dict[str, pd.DataFrame]:
    """The written tables, read with pandas (pyarrow) straight from the Parquet files."""
    _, out = generated
    tx = pd.read_parquet(out / "transactions")
    tx["amount"] = tx["amount"].astype(float)
    tx["order_ts"] = pd.to_datetime(tx["order_ts"], utc=True)
    customers = pd.read_parquet(out / "customers")
    products = pd.read_parquet(out / "products")
    products["price"] = products["price"].astype(float)
    return {"transactions": tx, "customers": customers, "products": products}


def _ts(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day.isoformat(), tz="UTC")


def _rfm(tx: pd.DataFrame, snapshot: dt.date, lookback_days: int = 365) -> pd.DataFrame:
    """RFM features as the pipeline defines them (returns subtract; purchases define R and F)."""
    end = _ts(snapshot)
    window = tx[(tx["order_ts"] < end) & (tx["order_ts"] >= end - pd.Timedelta(days=lookback_days))]
    purchases = window[window["amount"] > 0]
    last = purchases.groupby("customer_id")["order_ts"].max()
    return pd.DataFrame(
        {
            "recency_days": (end.normalize() - last.dt.normalize()).dt.days,
            "frequency": purchases.groupby("customer_id")["order_id"].nunique(),
            "monetary": window.groupby("customer_id")["amount"].sum(),
        }
    )


def _adjusted_rand_index(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a, b).to_numpy()
    pairs = sum(comb(int(x), 2) for x in table.ravel())
    rows = sum(comb(int(x), 2) for x in table.sum(axis=1))
    cols = sum(comb(int(x), 2) for x in table.sum(axis=0))
    expected = rows * cols / comb(int(table.sum()), 2)
    return (pairs - expected) / ((rows + cols) / 2 - expected)


def _types_of(schema: T.StructType) -> list[tuple[str, T.DataType]]:
    return [(f.name, f.dataType) for f in schema.fields]


def _types(df: DataFrame) -> list[tuple[str, T.DataType]]:
    return _types_of(df.schema)


# --------------------------------------------------------------------------------------------


def test_summary_matches_written_tables(
    spark: SparkSession, generated: tuple[GenerateSummary, Path]
) -> None:
    summary, out = generated
    assert summary.out_dir == str(out)
    assert summary.customers == CUSTOMERS == spark.read.parquet(str(out / "customers")).count()
    assert summary.products == PRODUCTS == spark.read.parquet(str(out / "products")).count()
    assert summary.transactions == spark.read.parquet(str(out / "transactions")).count()
    assert summary.start_date == END - dt.timedelta(days=DAYS)
    assert summary.end_date == END
    assert summary.seed == SEED
    # 3 partitions asked for -> 3 data files
    assert len(list((out / "transactions").glob("part-*.parquet"))) == 3


def test_schemas_exact(spark: SparkSession, generated: tuple[GenerateSummary, Path]) -> None:
    _, out = generated
    assert _types(spark.read.parquet(str(out / "transactions"))) == TRANSACTIONS_TYPES
    assert _types(spark.read.parquet(str(out / "customers"))) == CUSTOMERS_TYPES
    assert _types(spark.read.parquet(str(out / "products"))) == PRODUCTS_TYPES
    lazy = datagen.transactions_df(spark, customers=10, days=30, end_date=END, seed=1)
    assert _types(lazy) == TRANSACTIONS_TYPES == _types_of(datagen.TRANSACTIONS_SCHEMA)
    assert [name for name, _ in CUSTOMERS_TYPES] == list(datagen.CUSTOMERS_COLUMNS)
    assert _types(datagen.customers_df(spark, customers=10, days=30, seed=1)) == CUSTOMERS_TYPES
    assert _types(datagen.products_df(spark, products=10)) == PRODUCTS_TYPES


def test_no_nulls(frames: dict[str, pd.DataFrame]) -> None:
    for name, df in frames.items():
        assert len(df) > 0, name
        nulls = df.isna().sum()
        assert not nulls.any(), f"{name} has nulls: {nulls[nulls > 0].to_dict()}"


def test_ids_fixed_width_and_unique(frames: dict[str, pd.DataFrame]) -> None:
    customers, products = frames["customers"], frames["products"]
    assert customers["customer_id"].is_unique
    assert customers["customer_id"].str.fullmatch(r"C\d{8}").all()
    assert sorted(customers["customer_id"]) == [f"C{i:08d}" for i in range(1, CUSTOMERS + 1)]
    assert products["product_id"].is_unique
    assert sorted(products["product_id"]) == [f"P{i:05d}" for i in range(1, PRODUCTS + 1)]
    assert frames["transactions"]["order_id"].str.fullmatch(r"O\d{8}\d{5}").all()


def test_no_two_transaction_rows_identical(frames: dict[str, pd.DataFrame]) -> None:
    # exact duplicates are quarantined by the pipeline, so generated data must have none
    tx = frames["transactions"]
    assert not tx.duplicated().any()
    assert not tx.duplicated(["order_id", "line_no"]).any()
    returns = tx[tx["amount"] < 0]
    assert (returns["line_no"] == 0).all() and (tx.loc[tx["amount"] > 0, "line_no"] >= 1).all()


def test_order_ts_inside_period(frames: dict[str, pd.DataFrame]) -> None:
    ts = frames["transactions"]["order_ts"]
    assert ts.min() >= _ts(END - dt.timedelta(days=DAYS))
    assert ts.max() < _ts(END)
    # the whole period is used, up to the last day
    assert ts.max() >= _ts(END - dt.timedelta(days=3))
    assert ts.min() < _ts(END - dt.timedelta(days=DAYS - 3))


def test_every_reference_exists(frames: dict[str, pd.DataFrame]) -> None:
    tx = frames["transactions"]
    assert set(tx["customer_id"]) <= set(frames["customers"]["customer_id"])
    assert set(tx["product_id"]) <= set(frames["products"]["product_id"])
    assert set(tx["channel"]) <= {"web", "app", "store"}


def test_order_lines_share_customer_ts_and_channel(frames: dict[str, pd.DataFrame]) -> None:
    tx = frames["transactions"]
    purchases = tx[tx["amount"] > 0]
    per_order = purchases.groupby("order_id")[["customer_id", "order_ts", "channel"]].nunique()
    assert (per_order == 1).all().all()
    # orders never span customers, returns included
    assert (tx.groupby("order_id")["customer_id"].nunique() == 1).all()
    lines = purchases.groupby("order_id").size()
    assert lines.max() > 1 and 1.3 < lines.mean() < 2.0


def test_purchase_amount_is_catalogue_price_times_quantity(
    frames: dict[str, pd.DataFrame],
) -> None:
    tx, products = frames["transactions"], frames["products"]
    purchases = tx[tx["amount"] > 0].merge(products, on="product_id", how="left")
    assert (purchases["quantity"] >= 1).all()
    gross = purchases["price"] * purchases["quantity"]
    # full price or a 10% / 20% discount, rounded to the cent
    error = np.min([np.abs(purchases["amount"] - gross * paid) for paid in (1.0, 0.9, 0.8)], axis=0)
    assert (error <= 0.0051).all()
    assert (np.abs(purchases["amount"] - gross) <= 0.0051).mean() > 0.8


def test_returns(frames: dict[str, pd.DataFrame]) -> None:
    tx = frames["transactions"]
    purchases, returns = tx[tx["amount"] > 0], tx[tx["amount"] < 0]
    assert (tx["amount"] != 0).all()
    assert (returns["quantity"] < 0).all() and (purchases["quantity"] > 0).all()
    n_orders = purchases["order_id"].nunique()
    assert 0.02 <= len(returns) / n_orders <= 0.045
    assert returns["order_id"].is_unique  # at most one return row per order
    orders = purchases.groupby("order_id").agg(
        customer_id=("customer_id", "first"), order_ts=("order_ts", "first")
    )
    matched = returns.join(orders, on="order_id", rsuffix="_order", how="left")
    assert matched["customer_id_order"].notna().all(), "a return without its purchase"
    assert (matched["customer_id"] == matched["customer_id_order"]).all()
    assert (matched["order_ts"] > matched["order_ts_order"]).all()
    assert (matched["order_ts"] - matched["order_ts_order"]).max() < pd.Timedelta(days=400)
    # a return gives back part or all of one line of its order (same product)
    line = purchases.groupby(["order_id", "product_id"])[["amount", "quantity"]].sum()
    returned = returns.join(line, on=["order_id", "product_id"], rsuffix="_line", how="left")
    assert returned["amount_line"].notna().all()
    assert (-returned["amount"] <= returned["amount_line"] + 0.005).all()
    assert (-returned["quantity"] <= returned["quantity_line"]).all()


def test_returns_only_customers_exist(frames: dict[str, pd.DataFrame]) -> None:
    tx, customers = frames["transactions"], frames["customers"]
    end = _ts(END)
    window = tx[tx["order_ts"] >= end - pd.Timedelta(days=365)]
    only_returns = window.groupby("customer_id")["amount"].max() < 0
    ids = only_returns[only_returns].index
    assert len(ids) >= 3
    personas = customers.set_index("customer_id").loc[ids, "persona"]
    assert (personas == "lapsed_regulars").mean() > 0.8
    # they did buy before the window: the returned orders are older purchases of theirs
    earlier = tx[(tx["customer_id"].isin(ids)) & (tx["amount"] > 0)]
    assert (earlier["order_ts"] < end - pd.Timedelta(days=365)).all()
    assert set(window[window["customer_id"].isin(ids)]["order_id"]) <= set(earlier["order_id"])


def test_signup_before_first_purchase(frames: dict[str, pd.DataFrame]) -> None:
    tx, customers = frames["transactions"], frames["customers"]
    first = tx[tx["amount"] > 0].groupby("customer_id")["order_ts"].min().dt.date
    signup = customers.set_index("customer_id")["signup_date"]
    both = pd.concat([first.rename("first"), signup], axis=1, join="inner")
    assert (both["signup_date"] <= both["first"]).all()
    new = customers[customers["persona"] == "new_customers"]
    assert (new["signup_date"] >= END - dt.timedelta(days=60)).all()


def test_customer_attributes(frames: dict[str, pd.DataFrame]) -> None:
    customers = frames["customers"]
    assert set(customers["persona"]) == set(datagen.PERSONAS)
    assert customers["age"].between(18, 90).all()
    countries = customers["country"].value_counts(normalize=True)
    assert 5 <= len(countries) <= 10
    assert countries.index[0] == "US" and countries.iloc[0] > 2 * countries.iloc[3]
    assert customers.groupby("city")["country"].nunique().max() == 1
    assert set(customers["preferred_channel"]) == {"web", "app", "store"}
    for flag in ("email_opt_in", "push_opt_in", "sms_opt_in"):
        assert 0.05 < customers[flag].mean() < 0.95
    tags = customers.explode("interests")
    young = tags[tags["age"] < 30]["interests"].value_counts(normalize=True)
    old = tags[tags["age"] >= 60]["interests"].value_counts(normalize=True)
    assert young["tech"] > 2 * old["tech"] and old["home_garden"] > 2 * young["home_garden"]
    assert customers["interests"].map(len).between(0, 8).all()


def test_personas_differ_as_designed(frames: dict[str, pd.DataFrame]) -> None:
    tx, customers = frames["transactions"], frames["customers"]
    rfm = _rfm(tx, END).join(customers.set_index("customer_id")["persona"])
    rfm = rfm[rfm["frequency"] > 0]
    f = rfm.groupby("persona")["frequency"].mean()
    r = rfm.groupby("persona")["recency_days"].median()
    m = rfm.groupby("persona")["monetary"].median()
    purchases = tx[tx["amount"] > 0].join(
        customers.set_index("customer_id")["persona"], on="customer_id"
    )
    aov = purchases.groupby(["persona", "order_id"])["amount"].sum().groupby("persona").median()

    assert (
        f["frequent_small_spenders"]
        > f["champions"]
        > f["lapsed_regulars"]
        > f["occasional_mid_spenders"]
        > f["new_customers"]
        > f["one_time_buyers"]
        == 1.0
    )
    active = ("champions", "frequent_small_spenders", "new_customers")
    assert r["lapsed_regulars"] > 90 and r["one_time_buyers"] > 90
    assert min(r["lapsed_regulars"], r["one_time_buyers"]) > r["occasional_mid_spenders"]
    assert r["occasional_mid_spenders"] > max(r[p] for p in active)
    assert max(r[p] for p in active) < 30
    assert m.idxmax() == "champions" and m.idxmin() == "one_time_buyers"
    assert m["lapsed_regulars"] > m["occasional_mid_spenders"] > m["new_customers"]
    assert aov.idxmax() == "champions" and aov.idxmin() == "frequent_small_spenders"
    # every customer draws its own rate and spend: spread inside a persona
    champions = rfm[rfm["persona"] == "champions"]
    assert champions["frequency"].std() / champions["frequency"].mean() > 0.2
    assert champions["monetary"].std() / champions["monetary"].mean() > 0.3


def _kmeans(x: np.ndarray, k: int, *, seed: int = 1, restarts: int = 10) -> np.ndarray:
    """Plain Lloyd's k-means with k-means++ starts; labels of the best of ``restarts`` runs."""
    rng = np.random.default_rng(seed)
    best, best_inertia = np.zeros(len(x), dtype=int), np.inf
    for _ in range(restarts):
        centers = x[[rng.integers(len(x))]]
        while len(centers) < k:
            d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1).min(1)
            centers = np.vstack([centers, x[rng.choice(len(x), p=d2 / d2.sum())]])
        for _ in range(100):
            labels = ((x[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
            moved = np.array(
                [x[labels == c].mean(0) if (labels == c).any() else centers[c] for c in range(k)]
            )
            if np.allclose(moved, centers):
                break
            centers = moved
        inertia = ((x - centers[labels]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def test_kmeans_recovers_personas(frames: dict[str, pd.DataFrame]) -> None:
    """k-means (k = number of personas) on standardised log R, F, M finds the personas again."""
    rfm = _rfm(frames["transactions"], END)
    rfm = rfm[(rfm["frequency"] > 0) & (rfm["monetary"] > 0)].join(
        frames["customers"].set_index("customer_id")["persona"]
    )
    x = np.log1p(rfm[["recency_days", "frequency", "monetary"]].to_numpy(dtype=float))
    x = (x - x.mean(0)) / x.std(0)
    labels = _kmeans(x, len(datagen.PERSONAS))
    assert _adjusted_rand_index(rfm["persona"], pd.Series(labels, index=rfm.index)) >= 0.5


def test_rows_per_customer_year_and_partitions(
    spark: SparkSession, generated: tuple[GenerateSummary, Path]
) -> None:
    summary, _ = generated
    per_customer_year = summary.transactions / CUSTOMERS / (DAYS / 365)
    assert 14 < per_customer_year < 26
    assert datagen.default_partitions(spark, 2_500_000, 730) >= 45  # ~100M rows -> ~2M a file
    assert datagen.default_partitions(spark, 10, 30) == 1


def _checksum(df: DataFrame) -> tuple[int, int, int]:
    """Row count and two order-independent sums of row hashes (one cheap aggregation)."""
    h = F.xxhash64(*df.columns)
    row = df.agg(
        F.count(F.lit(1)), F.sum(h % 1_000_000_007), F.sum(F.hash(*df.columns) % 998_244_353)
    ).first()
    assert row is not None
    return (row[0], row[1], row[2])


def test_deterministic_for_a_seed(
    spark: SparkSession, generated: tuple[GenerateSummary, Path]
) -> None:
    """Same seed, sizes and end date -> the same rows, whatever the partitioning."""
    _, out = generated
    size = {"customers": CUSTOMERS, "days": DAYS, "end_date": END}

    def written(table: str) -> DataFrame:
        return spark.read.parquet(str(out / table))

    again = datagen.transactions_df(spark, seed=SEED, products=PRODUCTS, partitions=1, **size)
    assert _checksum(again) == _checksum(written("transactions"))
    customers = datagen.customers_df(spark, seed=SEED, partitions=2, **size)
    assert _checksum(customers) == _checksum(written("customers"))
    assert_df_equality(
        datagen.products_df(spark, products=PRODUCTS, seed=SEED),
        written("products"),
        ignore_row_order=True,
        ignore_nullable=True,
    )

    other = datagen.transactions_df(spark, seed=SEED + 1, products=PRODUCTS, **size)
    assert _checksum(other) != _checksum(again)
    other_customers = datagen.customers_df(spark, seed=SEED + 1, **size)
    assert _checksum(other_customers) != _checksum(customers)


# Checksums of a small data set written by the generator before its split into a package (when
# its distributions were SQL text). Benchmarks cache data sets by generator version, so any
# change of values must be deliberate: update these together with that version.
PINNED = {"customers": 300, "days": 730, "end_date": END, "seed": 5}
PINNED_CHECKSUMS = {
    "transactions": (11501, 8360442097, 5879786693),
    "customers": (300, -14552507657, 7037029866),
    "products": (40, 1344723753, -17102954),
}
# The customers' columns before the interest tags were added: unchanged by them.
PINNED_BEFORE_INTERESTS = (300, 981620341, 8867229410)


def test_values_pinned_for_a_seed(spark: SparkSession) -> None:
    assert {
        "transactions": _checksum(datagen.transactions_df(spark, products=40, **PINNED)),
        "customers": _checksum(datagen.customers_df(spark, **PINNED)),
        "products": _checksum(datagen.products_df(spark, products=40, seed=5)),
    } == PINNED_CHECKSUMS
    before = datagen.customers_df(spark, **PINNED).drop("interests")
    assert _checksum(before) == PINNED_BEFORE_INTERESTS


def test_distributions_compose_as_columns(spark: SparkSession) -> None:
    """The Column helpers draw what they claim, composed on any key column."""
    draws = Draws(3, ("id",))
    lam = F.when(F.col("id") % 2 == 0, 4.0).otherwise(60.0)  # exact and normal branches
    df = spark.range(40_000).select(
        (F.col("id") % 2 == 0).alias("small"),
        poisson(lam, draws.uniform(1), draws.normal(2), 99).alias("poisson"),
        geometric(draws.uniform(4), 0.375).alias("geometric"),
        pick(draws.uniform(5), [0.5, 0.3, 0.2]).alias("pick"),
        element(["a", "b"], pick(draws.uniform(6), [1.0, 0.0])).alias("element"),
        draws.normal(7).alias("normal"),
    )
    stats = df.groupBy("small").agg(F.mean("poisson"), F.variance("poisson")).collect()
    moments = {row[0]: (row[1], row[2]) for row in stats}
    assert moments[True] == pytest.approx((4.0, 4.0), rel=0.05)
    assert moments[False] == pytest.approx((60.0, 60.0), rel=0.05)
    row = df.agg(
        F.mean("geometric"),
        *[F.mean((F.col("pick") == i).cast("double")) for i in range(3)],
        F.countDistinct("element"),
        F.mean("normal"),
        F.stddev("normal"),
    ).first()
    assert row is not None
    assert row[0] == pytest.approx(0.375 / 0.625, rel=0.05)
    assert list(row[1:4]) == pytest.approx([0.5, 0.3, 0.2], abs=0.01)
    assert row[4] == 1
    assert row[5] == pytest.approx(0.0, abs=0.02)
    assert row[6] == pytest.approx(1.0, rel=0.02)


def test_lazy_frames_need_no_action(spark: SparkSession) -> None:
    # a benchmark can define 100M+ rows without running anything, and nothing is shuffled
    huge = datagen.transactions_df(spark, customers=3_000_000, days=730, end_date=END, seed=1)
    plan = huge._jdf.queryExecution().executedPlan().toString()
    assert "Exchange" not in plan
    splits = re.search(r"Range \(1, 3000001, step=1, splits=(\d+)\)", plan)
    assert splits is not None and int(splits.group(1)) >= 50  # ~2M rows a partition (and file)


def test_tiny_sizes_work(spark: SparkSession) -> None:
    tiny = {"customers": 1, "days": 1, "end_date": END, "seed": 3}
    assert datagen.transactions_df(spark, products=1, **tiny).count() <= 20
    assert datagen.customers_df(spark, **tiny).count() == 1
    assert datagen.products_df(spark, products=1).count() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers must be at least 1"),
        ({"customers": "10"}, "customers must be a whole number"),
        ({"days": 0}, "days must be at least 1"),
        ({"days": 1.5}, "days must be a whole number"),
        ({"products": 0}, "products must be at least 1"),
        ({"partitions": 0}, "partitions must be at least 1"),
        ({"end_date": "2026-11-23"}, "end_date must be a date"),
        ({"seed": 2**64}, "seed must be a 64-bit whole number"),
    ],
)
def test_invalid_arguments(
    spark: SparkSession, tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        generate(spark, str(tmp_path / "out"), **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_generate_writes_nothing_when_the_same_data_is_there(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The same arguments a second time leave the files as they are (an incremental run would
    take new files of the same rows as copies); --force or other arguments write again."""

    def files() -> dict[str, float]:
        return {str(p): p.stat().st_mtime_ns for p in (tmp_path / "transactions").glob("*.parquet")}

    args = {"customers": 30, "days": 20, "end_date": dt.date(2026, 3, 1), "seed": 3}
    first = generate(spark, str(tmp_path), **args)
    before = files()
    again = generate(spark, str(tmp_path), **args)
    assert first.written and not again.written
    assert again == dataclasses.replace(first, written=False) and files() == before
    assert generate(spark, str(tmp_path), **args, force=True).written
    assert files() != before
    other = generate(spark, str(tmp_path), **{**args, "seed": 4})
    assert other.written and other.seed == 4
    shutil.rmtree(tmp_path / "products")  # a table gone: written again
    assert generate(spark, str(tmp_path), **{**args, "seed": 4}).written
    # a manifest that is not JSON: written again
    write_text(spark, str(tmp_path / "_generated.json"), "{not json")
    assert generate(spark, str(tmp_path), **{**args, "seed": 4}).written
