"""The peers rfm-spark is measured against (benchmarks only, never part of the package).

- ``naive_*``: PySpark written the way tutorials do it: one scan of the raw transactions per
  snapshot, one ``groupBy`` per customer, then ``F.ntile(n).over(Window.orderBy(...))`` with no
  ``partitionBy`` (Spark moves every customer to one partition and warns
  ``No Partition Defined for Window operation!``).
- ``spark_floor``: read the needed columns and one group-by aggregate, nothing else.
- ``duckdb_segment``: DuckDB SQL computing the same features and ntile scores.
- ``pandas_segment``: pandas, the same.

All of them use the definitions of design.md section 2 and rfm_spark/features.py (window
``D - lookback <= day < D``; frequency = distinct order ids per day over positive rows, summed
over days; monetary = net spend incl. returns; recency from the last purchase day, or the last
return day for returns-only customers) and the ntile order of design.md section 3, so that the
outputs can be compared row by row.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rfm_spark.segments import load_scheme

BINS = 5
LOOKBACK = 365


def scheme_mapping() -> dict[str, str]:
    return dict(load_scheme("rfm11").mapping)


# --------------------------------------------------------------------------------------------
# naive PySpark


def naive_features(tx: DataFrame, snapshot: dt.date, lookback: int = LOOKBACK) -> DataFrame:
    """Features straight from the raw transactions, one groupBy per customer."""
    start = snapshot - dt.timedelta(days=lookback)
    day = F.to_date("order_ts")
    buy = F.col("amount") > 0
    df = tx.withColumn("day", day).filter((F.col("day") >= start) & (F.col("day") < snapshot))
    agg = df.groupBy("customer_id").agg(
        F.countDistinct(F.when(buy, F.col("order_id"))).alias("frequency"),
        F.sum("amount").alias("monetary"),
        F.countDistinct(F.when(buy, F.col("day"))).alias("purchase_days"),
        F.coalesce(F.max(F.when(buy, F.col("day"))), F.max("day")).alias("last"),
        F.coalesce(F.min(F.when(buy, F.col("day"))), F.min("day")).alias("first"),
    )
    snap = F.lit(snapshot)
    monetary = F.col("monetary").cast("decimal(18,2)")
    return agg.select(
        "customer_id",
        F.datediff(snap, F.col("last")).alias("recency_days"),
        F.col("frequency").cast("bigint").alias("frequency"),
        monetary.alias("monetary"),
        F.col("purchase_days").cast("bigint").alias("purchase_days"),
        F.when(F.col("frequency") > 0, F.round(monetary / F.col("frequency"), 2))
        .cast("decimal(18,2)")
        .alias("avg_order_value"),
        F.col("first").alias("first_purchase_date"),
        F.col("last").alias("last_purchase_date"),
        F.datediff(snap, F.col("first")).alias("tenure_days"),
    )


def naive_scores(features: DataFrame, bins: int = BINS) -> DataFrame:
    """The tutorial scoring: three global windows (each one partition, one task)."""
    return (
        features.withColumn(
            "r_score",
            F.ntile(bins).over(Window.orderBy(F.col("recency_days").desc(), "customer_id")),
        )
        .withColumn("f_score", F.ntile(bins).over(Window.orderBy("frequency", "customer_id")))
        .withColumn("m_score", F.ntile(bins).over(Window.orderBy("monetary", "customer_id")))
    )


def naive_segment(spark: SparkSession, tx_path: str, snapshot: dt.date, out: str) -> None:
    """Features, scores, a segment per customer from a code lookup table, written as Parquet."""
    tx = spark.read.parquet(tx_path)
    scored = naive_scores(naive_features(tx, snapshot))
    codes = spark.createDataFrame(list(scheme_mapping().items()), "rfm_code string, segment string")
    code = F.concat_ws("", *[F.col(c).cast("string") for c in ("r_score", "f_score", "m_score")])
    (
        scored.withColumn("rfm_code", code)
        .join(F.broadcast(codes), on="rfm_code", how="left")
        .write.mode("overwrite")
        .parquet(out)
    )


# --------------------------------------------------------------------------------------------
# the Spark floor


def spark_floor(spark: SparkSession, tx_path: str, snapshot: dt.date) -> None:
    """Read the needed columns, keep the window, one group-by aggregate; no output written."""
    start = snapshot - dt.timedelta(days=LOOKBACK)
    day = F.to_date("order_ts")
    (
        spark.read.parquet(tx_path)
        .select("customer_id", "order_id", "order_ts", "amount")
        .filter((day >= start) & (day < snapshot))
        .groupBy("customer_id")
        .agg(F.max("order_ts"), F.count("order_id"), F.sum("amount"))
        .write.format("noop")
        .mode("overwrite")
        .save()
    )


# --------------------------------------------------------------------------------------------
# DuckDB


def duckdb_sql(tx_glob: str, snapshot: dt.date, out: str, lookback: int = LOOKBACK) -> str:
    start = snapshot - dt.timedelta(days=lookback)
    codes = ", ".join(f"('{c}', '{s}')" for c, s in sorted(scheme_mapping().items()))
    return f"""
COPY (
WITH tx AS (
    SELECT customer_id, order_id, CAST(order_ts AS DATE) AS day, amount
    FROM read_parquet('{tx_glob}')
    WHERE order_ts >= TIMESTAMPTZ '{start} 00:00:00+00'
      AND order_ts < TIMESTAMPTZ '{snapshot} 00:00:00+00'
),
daily AS (
    SELECT customer_id, day,
           count(DISTINCT order_id) FILTER (WHERE amount > 0)
             + count(*) FILTER (WHERE amount > 0 AND order_id IS NULL) AS orders,
           sum(amount) AS net_amount
    FROM tx GROUP BY customer_id, day
),
agg AS (
    SELECT customer_id,
           sum(orders) AS frequency,
           CAST(sum(net_amount) AS DECIMAL(18, 2)) AS monetary,
           count(*) FILTER (WHERE orders > 0) AS purchase_days,
           coalesce(max(day) FILTER (WHERE orders > 0), max(day)) AS last_purchase_date,
           coalesce(min(day) FILTER (WHERE orders > 0), min(day)) AS first_purchase_date
    FROM daily GROUP BY customer_id
),
features AS (
    SELECT customer_id,
           CAST(DATE '{snapshot}' - last_purchase_date AS INTEGER) AS recency_days,
           CAST(frequency AS BIGINT) AS frequency, monetary, purchase_days,
           CASE WHEN frequency > 0
                THEN CAST(round(monetary / frequency, 2) AS DECIMAL(18, 2)) END AS avg_order_value,
           first_purchase_date, last_purchase_date,
           CAST(DATE '{snapshot}' - first_purchase_date AS INTEGER) AS tenure_days
    FROM agg
),
scored AS (
    SELECT *,
        ntile({BINS}) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
        ntile({BINS}) OVER (ORDER BY frequency, customer_id) AS f_score,
        ntile({BINS}) OVER (ORDER BY monetary, customer_id) AS m_score
    FROM features
),
codes(rfm_code, segment) AS (VALUES {codes})
SELECT s.*, s.r_score::VARCHAR || s.f_score::VARCHAR || s.m_score::VARCHAR AS rfm_code,
       c.segment
FROM scored s LEFT JOIN codes c
  ON c.rfm_code = s.r_score::VARCHAR || s.f_score::VARCHAR || s.m_score::VARCHAR
) TO '{out}' (FORMAT parquet)
"""


def duckdb_segment(tx_glob: str, snapshot: dt.date, out: str, threads: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(duckdb_sql(tx_glob, snapshot, out))
    con.close()


# --------------------------------------------------------------------------------------------
# pandas


def _ntile(position, total: int, n: int):  # type: ignore[no-untyped-def]
    """Spark's ntile bucket for 1-based positions (numpy arrays)."""
    import numpy as np

    size, padded = divmod(total, n)
    big_rows = padded * (size + 1)
    return np.where(
        position <= big_rows,
        (position - 1) // (size + 1) + 1,
        (position - 1 - padded) // max(size, 1) + 1,
    )


def pandas_segment(tx_path: str, snapshot: dt.date, out: str) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    start = snapshot - dt.timedelta(days=LOOKBACK)
    lo = pd.Timestamp(start.isoformat(), tz="UTC")
    hi = pd.Timestamp(snapshot.isoformat(), tz="UTC")
    table = ds.dataset(tx_path, format="parquet").to_table(
        columns=["customer_id", "order_id", "order_ts", "amount"],
        filter=(ds.field("order_ts") >= lo) & (ds.field("order_ts") < hi),
    )
    # exact cents as int64 (pandas would turn decimals into Python Decimal objects)
    cents = pc.cast(pc.multiply(table["amount"], 100), "int64")
    df = pd.DataFrame(
        {
            "customer_id": table["customer_id"].to_pandas(),
            "order_id": table["order_id"].to_pandas(),
            "day": table["order_ts"].to_pandas().dt.floor("D"),
            "cents": cents.to_pandas(),
        }
    )
    del table
    buy = df["cents"] > 0
    df["buy_id"] = df["order_id"].where(buy)
    df["buy_noid"] = buy & df["order_id"].isna()
    daily = df.groupby(["customer_id", "day"], sort=False).agg(
        ids=("buy_id", "nunique"), noid=("buy_noid", "sum"), net=("cents", "sum")
    )
    del df
    daily["orders"] = daily["ids"] + daily["noid"]
    daily = daily.reset_index()
    daily["buy_day"] = daily["day"].where(daily["orders"] > 0)
    f = daily.groupby("customer_id", sort=False).agg(
        frequency=("orders", "sum"),
        net=("net", "sum"),
        purchase_days=("buy_day", "count"),
        last_buy=("buy_day", "max"),
        first_buy=("buy_day", "min"),
        last_any=("day", "max"),
        first_any=("day", "min"),
    )
    del daily
    f = f.reset_index()
    snap = pd.Timestamp(snapshot.isoformat(), tz="UTC")
    last = f["last_buy"].fillna(f["last_any"])
    first = f["first_buy"].fillna(f["first_any"])
    feats = pd.DataFrame(
        {
            "customer_id": f["customer_id"],
            "recency_days": (snap - last).dt.days.astype("int32"),
            "frequency": f["frequency"].astype("int64"),
            "monetary_cents": f["net"].astype("int64"),
            "purchase_days": f["purchase_days"].astype("int64"),
            "first_purchase_date": first.dt.date,
            "last_purchase_date": last.dt.date,
            "tenure_days": (snap - first).dt.days.astype("int32"),
        }
    )
    n = len(feats)
    pos = np.arange(1, n + 1)
    for score, col, desc in (
        ("r_score", "recency_days", True),
        ("f_score", "frequency", False),
        ("m_score", "monetary_cents", False),
    ):
        order = feats.sort_values([col, "customer_id"], ascending=[not desc, True]).index
        s = np.empty(n, dtype="int32")
        s[order.to_numpy()] = _ntile(pos, n, BINS)
        feats[score] = s
    code = (
        feats["r_score"].astype(str) + feats["f_score"].astype(str) + feats["m_score"].astype(str)
    )
    feats["rfm_code"] = code
    feats["segment"] = code.map(scheme_mapping())
    feats.to_parquet(out, index=False)
