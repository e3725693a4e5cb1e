"""Recommendations: implicit feedback from purchases, the held-out last purchases and precision.

DataFrame transforms with no action. Purchases are the valid rows with a positive amount; a
customer's feedback on a product is how many purchase rows name it. To evaluate, each customer
with at least two purchase days keeps their last purchase day's products aside
(:func:`holdout`); a recommender is trained on the rest and its top ``k`` are compared with
those products (:func:`precision_at_k`), as is the ``k`` most popular products' list.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from rfm_spark.validation import ROW


def purchases(validated: DataFrame, product_column: str, start: dt.date, end: dt.date) -> DataFrame:
    """``customer_id``, ``product_id``, ``order_date`` of the valid purchase rows in
    ``[start, end)`` (the product read from the input row's ``product_column``)."""
    day = F.col("order_date")
    return (
        validated.filter(
            F.col("reject_reason").isNull()
            & (F.col("amount") > 0)
            & (day >= F.lit(start))
            & (day < F.lit(end))
        )
        .select(
            "customer_id",
            F.col(ROW).getField(product_column).cast("string").alias("product_id"),
            "order_date",
        )
        .filter(F.col("product_id").isNotNull())
    )


def feedback(rows: DataFrame) -> DataFrame:
    """``customer_id``, ``product_id``, ``purchases`` (purchase rows naming the product)."""
    return rows.groupBy("customer_id", "product_id").agg(
        F.count(F.lit(1)).cast("float").alias("purchases")
    )


def holdout(rows: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(the rows before each customer's last purchase day, the products of that day) for the
    customers with at least two purchase days; the other customers' rows are all training."""
    by_customer = Window.partitionBy("customer_id")
    marked = rows.withColumns(
        {
            "_last": F.max("order_date").over(by_customer),
            "_first": F.min("order_date").over(by_customer),
        }
    )
    held = (F.col("order_date") == F.col("_last")) & (F.col("_last") > F.col("_first"))
    train = marked.filter(~held).drop("_last", "_first")
    test = marked.filter(held).select("customer_id", "product_id").distinct()
    return train, test


def popular(train: DataFrame, k: int) -> DataFrame:
    """The ``k`` products bought by the most customers (``product_id``, ``rank`` 1..k) (ties:
    the smaller id first); one small sort of the products."""
    counts = train.groupBy("product_id").agg(F.countDistinct("customer_id").alias("_n"))
    ranked = counts.withColumn(
        "rank", F.row_number().over(Window.orderBy(F.col("_n").desc(), "product_id"))
    )
    return ranked.filter(F.col("rank") <= k).select("product_id", "rank")


def precision_at_k(recommended: DataFrame, held_out: DataFrame, k: int) -> DataFrame:
    """One row: ``precision`` (the mean over held-out customers of the share of their top ``k``
    that they bought on the held-out day) and ``customers``.

    Args:
        recommended: ``customer_id``, ``product_id``, ``rank`` (1 is best).
        held_out: ``customer_id``, ``product_id`` of the held-out day.
        k: How many recommendations count.
    """
    top = recommended.filter(F.col("rank") <= k)
    customers = held_out.select("customer_id").distinct()
    hits = (
        top.join(held_out, on=["customer_id", "product_id"])
        .groupBy("customer_id")
        .agg(F.count(F.lit(1)).alias("_hits"))
    )
    per = customers.join(hits, on="customer_id", how="left").fillna({"_hits": 0})
    return per.agg(
        (F.avg("_hits") / F.lit(float(k))).alias("precision"),
        F.count(F.lit(1)).alias("customers"),
    )


def dominant_category(recommended: DataFrame, categories: DataFrame) -> DataFrame:
    """``customer_id``, ``recommended_category``: the category most of a customer's
    recommendations are in (ties: the one of the better-ranked recommendation)."""
    joined = recommended.join(categories, on="product_id")
    per = joined.groupBy("customer_id", "category").agg(
        F.count(F.lit(1)).alias("_n"), F.min("rank").alias("_best")
    )
    order = Window.partitionBy("customer_id").orderBy(F.col("_n").desc(), "_best")
    return (
        per.withColumn("_i", F.row_number().over(order))
        .filter(F.col("_i") == 1)
        .select("customer_id", F.col("category").alias("recommended_category"))
    )


def top_per_segment(recommended: DataFrame, segments: DataFrame, n: int) -> DataFrame:
    """The ``n`` products recommended to the most customers of each segment: ``segment``,
    ``product_id``, ``customers``, ``rank``."""
    counts = recommended.join(segments.select("customer_id", "segment"), on="customer_id")
    counts = counts.groupBy("segment", "product_id").agg(F.count(F.lit(1)).alias("customers"))
    order = Window.partitionBy("segment").orderBy(F.col("customers").desc(), "product_id")
    return counts.withColumn("rank", F.row_number().over(order)).filter(F.col("rank") <= n)
