"""The recommendation run: ALS on implicit purchase feedback, its precision against the most
popular products, and every customer's top products into ``customer_recommendations``.

MLlib's ALS needs integer ids: customers and products are numbered 0..n-1 by ``zipWithIndex``
on their distinct ids (distributed, no driver-side list). The evaluation fits on the purchases
before each customer's last purchase day and scores that day's products; the recommendations
written come from a second fit on every purchase of the lookback.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rfm_spark.config import Config
from rfm_spark.errors import DataError
from rfm_spark.io.inputs import read_products, read_transactions
from rfm_spark.io.store import open_store
from rfm_spark.progress import Progress
from rfm_spark.recommend import (
    dominant_category,
    feedback,
    holdout,
    popular,
    precision_at_k,
    purchases,
    top_per_segment,
)
from rfm_spark.schemas import RECOMMENDATIONS_SCHEMA, RECOMMENDATIONS_TABLE, SNAPSHOT_COLUMN, cast

SEED = 42
K = 10  # precision@10


@dataclass(frozen=True)
class RecommendResult:
    table: str
    version: int
    customers: int
    precision: float  # ALS, precision@10 on the held-out last purchase days
    baseline: float  # the 10 most popular products, the same customers
    evaluated: int
    per_segment: list[dict[str, Any]] = field(default_factory=list)


def _numbered(rows: DataFrame, column: str, number: str, buckets: int = 64) -> DataFrame:
    """``column`` and ``number``: its distinct values numbered 0..n-1 (ALS wants integer ids).

    Values are spread over ``buckets`` by a hash and ranked within each; a bucket's first
    number is the count of the buckets before it (one small collect). Deterministic, and no
    step gathers all values in one partition.
    """
    bucketed = (
        rows.select(column)
        .distinct()
        .withColumn("_bucket", F.pmod(F.xxhash64(column), F.lit(buckets)))
    )
    counts: dict[int, int] = {
        int(r[0]): int(r[1]) for r in bucketed.groupBy("_bucket").count().collect()
    }
    starts, total = {}, 0
    for bucket in sorted(counts):
        starts[bucket], total = total, total + counts[bucket]
    first = F.create_map(*[F.lit(x) for kv in starts.items() for x in kv])
    rank = F.row_number().over(Window.partitionBy("_bucket").orderBy(column))
    return bucketed.select(column, (first[F.col("_bucket")] + rank - 1).cast("int").alias(number))


def _als(rank: int) -> ALS:
    return ALS(
        userCol="_user", itemCol="_item", ratingCol="purchases", implicitPrefs=True, rank=rank,
        regParam=0.05, alpha=20.0, maxIter=10, seed=SEED, coldStartStrategy="drop",
        nonnegative=True,
    )  # fmt: skip


def _top(model: ALSModel, users: DataFrame, k: int, ids: tuple[DataFrame, DataFrame]) -> DataFrame:
    """``customer_id``, ``rank``, ``product_id``, ``score``: the ``k`` best of ``users``."""
    customers, products = ids
    recs = model.recommendForUserSubset(users, k)
    exploded = recs.select("_user", F.posexplode("recommendations").alias("_pos", "_rec"))
    return (
        exploded.select(
            "_user", (F.col("_pos") + 1).alias("rank"),
            F.col("_rec._item").alias("_item"), F.col("_rec.rating").cast("double").alias("score"),
        )
        .join(customers, on="_user")
        .join(products, on="_item")
        .select("customer_id", "rank", "product_id", "score")
    )  # fmt: skip


def run_recommend(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    top: int = 10,
    rank: int = 32,
    product_column: str = "product_id",
    run_id: str = "",
    progress: Progress | None = None,
) -> RecommendResult:
    """Evaluate ALS against popularity, then write every customer's ``top`` products.

    Raises:
        DataError: No purchase with a product in the lookback.
    """
    progress = progress or Progress("recommend")
    start = snapshot_date - dt.timedelta(days=config.features.lookback_days)
    validated = read_transactions(spark, config.input, now=dt.datetime.now(dt.timezone.utc))
    rows = purchases(validated, product_column, start, snapshot_date)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        ids = (_numbered(rows, "customer_id", "_user"), _numbered(rows, "product_id", "_item"))
        ids = (ids[0].persist(), ids[1].persist())
        with progress.step("numbering customers and products"):
            customers = ids[0].count()
        if customers == 0:
            raise DataError(
                f"no purchase with a {product_column!r} between {start} and {snapshot_date}"
            )
        with progress.step(f"evaluating ALS (rank {rank}) on the held-out last purchase days"):
            precision, baseline, evaluated = _evaluate(rows, ids, rank)
        with progress.step(f"fitting ALS on {customers:,} customers, their top {top} products"):
            model = _als(rank).fit(_with_ids(feedback(rows), ids))
            recs = _top(model, ids[0], top, ids).persist(StorageLevel.MEMORY_AND_DISK)
            recs.count()
        out = _with_categories(spark, config, recs)
        version, path = _commit(spark, config, out, snapshot_date, run_id, progress)
        per_segment = _per_segment(spark, config, recs, snapshot_date)
        recs.unpersist()
    finally:
        rows.unpersist()
    return RecommendResult(path, version, customers, precision, baseline, evaluated, per_segment)


def _with_ids(df: DataFrame, ids: tuple[DataFrame, DataFrame]) -> DataFrame:
    return df.join(ids[0], on="customer_id").join(ids[1], on="product_id")


def _evaluate(
    rows: DataFrame, ids: tuple[DataFrame, DataFrame], rank: int
) -> tuple[float, float, int]:
    """precision@10 of ALS and of the 10 most popular products on the held-out days."""
    train, held = holdout(rows)
    model = _als(rank).fit(_with_ids(feedback(train), ids))
    users = held.select("customer_id").distinct().join(ids[0], on="customer_id")
    ours = precision_at_k(_top(model, users.select("_user"), K, ids), held, K).first()
    everyone = users.select("customer_id").crossJoin(popular(train, K))
    theirs = precision_at_k(everyone, held, K).first()
    assert ours is not None and theirs is not None
    return float(ours["precision"] or 0), float(theirs["precision"] or 0), int(theirs["customers"])


def _with_categories(spark: SparkSession, config: Config, recs: DataFrame) -> DataFrame:
    """The recommendations with each product's category and the customer's dominant one
    (null without a products table)."""
    products = read_products(spark, config.input)
    if products is None:
        return recs.withColumns({"category": F.lit(None), "recommended_category": F.lit(None)})
    with_category = recs.join(products, on="product_id", how="left")
    return with_category.join(dominant_category(recs, products), on="customer_id", how="left")


def _commit(
    spark: SparkSession, config: Config, out: DataFrame, day: dt.date, run_id: str,
    progress: Progress,
) -> tuple[int, str]:  # fmt: skip
    extra = {SNAPSHOT_COLUMN: F.lit(day), "run_id": F.lit(run_id)}
    rows = out.select(
        *[cast(extra.get(f.name, F.col(f.name)), f.dataType).alias(f.name)
          for f in RECOMMENDATIONS_SCHEMA]
    )  # fmt: skip
    path = config.table_path(RECOMMENDATIONS_TABLE)
    with progress.step(f"committing to {path}"):
        version = open_store(spark).write_partition(
            rows, path, partition_column=SNAPSHOT_COLUMN, partition_value=day,
            metadata={"run_id": run_id, "snapshot_date": day.isoformat()},
        )  # fmt: skip
    return version, path


def _per_segment(
    spark: SparkSession, config: Config, recs: DataFrame, day: dt.date
) -> list[dict[str, Any]]:
    """The three products recommended most in each segment of the snapshot (empty without it)."""
    store = open_store(spark)
    if not store.exists(config.table_path()):
        return []
    segments = store.read(config.table_path()).filter(F.col(SNAPSHOT_COLUMN) == F.lit(day))
    rows = top_per_segment(recs, segments, 3).orderBy("segment", "rank").collect()
    return [r.asDict() for r in rows]
