"""Behaviour in the transactions, per customer: DataFrame transforms, no action.

What attribute rules can read besides the customers table and the snapshot's features
(:data:`BEHAVIOUR_COLUMNS`), from the valid rows of a snapshot's window:

- ``order_channel``: the channel of most of the customer's purchase rows (ties: the first by
  name), from the input's ``channel`` column;
- ``top_category``: the product category of most of their purchase rows (ties: the first by
  name), from the input's ``product_id`` and the products table;
- ``category_count``: how many categories they bought from (the breadth of their mix);
- ``return_share``: the share of their gross spend they returned (refunds over purchases; 0
  without returns, null without purchases).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm_spark.validation import ROW

BEHAVIOUR_COLUMNS = ("order_channel", "top_category", "category_count", "return_share")
NEEDS_CHANNEL = ("order_channel",)
NEEDS_PRODUCTS = ("top_category", "category_count")


def _most_common(rows: DataFrame, value: str, name: str) -> DataFrame:
    """``customer_id`` and the ``value`` of most of their rows as ``name``."""
    counts = rows.groupBy("customer_id", value).agg(F.count(F.lit(1)).alias("_n"))
    order = Window.partitionBy("customer_id").orderBy(F.col("_n").desc(), F.col(value))
    first = counts.withColumn("_i", F.row_number().over(order)).filter(F.col("_i") == 1)
    return first.select("customer_id", F.col(value).alias(name))


def behaviour(rows: DataFrame, wanted: list[str], products: DataFrame | None = None) -> DataFrame:
    """``customer_id`` and the ``wanted`` columns of :data:`BEHAVIOUR_COLUMNS`.

    Args:
        rows: Valid rows of one window with ``customer_id``, ``amount`` and ``_row`` (the input
            row, holding ``channel`` and ``product_id`` when those are wanted).
        wanted: The behaviour columns to compute.
        products: ``product_id`` and ``category``, for the category columns.
    """
    amount: Column = F.col("amount")
    bought = rows.filter(amount > 0)
    refunds = F.coalesce(F.sum(F.when(amount < 0, -amount)), F.lit(0))
    spent = F.sum(F.when(amount > 0, amount))  # null without purchases, and so the share
    out = rows.groupBy("customer_id").agg((refunds / spent).cast("double").alias("return_share"))
    if "order_channel" in wanted:
        channels = bought.select("customer_id", F.col(ROW).getField("channel").alias("_channel"))
        out = out.join(_most_common(channels, "_channel", "order_channel"), "customer_id", "left")
    if products is not None and set(wanted) & set(NEEDS_PRODUCTS):
        lines = bought.select(
            "customer_id", F.col(ROW).getField("product_id").cast("string").alias("product_id")
        ).join(products, on="product_id")
        breadth = lines.groupBy("customer_id").agg(
            F.countDistinct("category").cast("double").alias("category_count")
        )
        out = out.join(_most_common(lines, "category", "top_category"), "customer_id", "left")
        out = out.join(breadth, "customer_id", "left")
    return out.select("customer_id", *[c for c in wanted if c in out.columns])
