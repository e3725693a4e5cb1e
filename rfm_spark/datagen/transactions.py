"""The transactions table: orders exploded from the customer rows, lines from the orders.

No shuffle and nothing collected: a customer row carries everything its orders are drawn from
(see :mod:`rfm_spark.datagen.customers`), an order row everything its lines are drawn from, and
a line finds its product by inverting the catalogue's price curve instead of joining it. Random
draws are keyed by customer and order number (and line number), so a return row recomputes the
line it returns from the same hashes.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.datagen import params as P
from rfm_spark.datagen.arguments import check_args, check_int
from rfm_spark.datagen.customers import customer_base
from rfm_spark.datagen.distributions import Draws, element, floor_int, geometric
from rfm_spark.datagen.effect import PLANTED_ORDER, PlantedEffect, planted_orders
from rfm_spark.datagen.formats import money, padded
from rfm_spark.datagen.products import Catalogue
from rfm_spark.session import default_parallelism

_ROWS_PER_PARTITION = 2_000_000


def estimated_transaction_rows(customers: int, days: int) -> int:
    """Rough number of transaction rows for a size (used to choose the partition count)."""
    return int(customers * max(days, 30) / 365.0 * P.ROWS_PER_CUSTOMER_YEAR)


def default_partitions(spark: SparkSession, customers: int, days: int) -> int:
    """Partitions of the transactions: the default parallelism, more for big sizes (~2M rows)."""
    parallelism = default_parallelism(spark)
    by_size = math.ceil(estimated_transaction_rows(customers, days) / _ROWS_PER_PARTITION)
    return max(1, min(parallelism, math.ceil(customers / 1000)), by_size)


def _orders(base: DataFrame, draws: Draws, customers: int, planted: DataFrame | None) -> DataFrame:
    """One row per order ``_k`` of a customer: its day, hour, size and return draws.

    Order 0 is the anchor order (on day ``_anchor``), orders 1.._n_extra are spread uniformly
    over the customer's active days; a planted order (``planted``, see
    :mod:`rfm_spark.datagen.effect`) falls on its ``_planted_day``.
    """
    anchor, n_extra = F.col("_anchor"), F.col("_n_extra")
    has_anchor = F.when(anchor.isNull(), 0).otherwise(1)
    numbers = F.when(
        n_extra + has_anchor > 0, F.sequence(F.when(anchor.isNull(), 1).otherwise(0), n_extra)
    ).otherwise(F.array().cast("array<int>"))
    kept = [
        "_c", "customer_id", "_spend", "_returns_only", "_a", "_b", "_anchor", "preferred_channel"
    ]  # fmt: skip
    orders = base.select(*kept, F.explode(numbers).alias("_k"))
    a, b, k = F.col("_a"), F.col("_b"), F.col("_k")
    is_anchor = anchor.isNotNull() & (k == 0)
    spread_day = a + floor_int(draws.uniform(P.S_ORDER_DAY) * F.greatest(b - a, F.lit(1)))
    day = F.when(is_anchor, anchor).otherwise(spread_day)
    if planted is not None:
        orders = orders.unionByName(
            planted.select(*kept, "_k", "_planted_day"), allowMissingColumns=True
        )
        day = F.when(k == PLANTED_ORDER, F.col("_planted_day")).otherwise(day)
    return orders.withColumns(
        {
            "order_id": padded("O", (F.col("_c"), P.id_width(customers)), (k, 5)),
            "_forced_return": F.col("_returns_only") & is_anchor,
            "_day": day,
            # afternoon-peaked time of day
            "_hour": F.pmod(draws.normal(P.S_ORDER_TIME) * 4.5 + 13.5, F.lit(24.0)),
            "_u_channel": draws.uniform(P.S_ORDER_CHANNEL),
            "_n_items": F.least(1 + geometric(draws.uniform(P.S_ITEMS), 0.375), F.lit(12)),
            "_u_delay": draws.uniform(P.S_RETURN_DELAY),
        }
    )


def _timed_orders(orders: DataFrame, draws: Draws, period: P.Period) -> DataFrame:
    """Orders with their time in epoch seconds, channel, and whether and when they return."""
    day, u_channel, u_delay = F.col("_day"), F.col("_u_channel"), F.col("_u_delay")
    forced = F.col("_forced_return")
    seconds = (
        F.lit(period.start_epoch).cast("bigint")
        + day.cast("bigint") * 86400
        + F.floor(F.col("_hour") * 3600.0).cast("bigint")
    )
    other_channel = element(P.CHANNELS, floor_int((u_channel - 0.7) / 0.3 * 3))
    # A forced return (returns-only customers) lands inside the last 365 days.
    delay = F.when(
        forced, (period.days - P.LOOKBACK_DAYS + 1) - day + floor_int(u_delay * 20)
    ).otherwise(2 + floor_int(u_delay * 28))
    return orders.select(
        "_c",
        "_k",
        "_spend",
        "customer_id",
        "order_id",
        seconds.alias("_sec"),
        F.when(u_channel < 0.7, F.col("preferred_channel"))
        .otherwise(other_channel)
        .alias("channel"),
        "_n_items",
        (forced | (draws.uniform(P.S_RETURN) < P.RETURN_RATE)).alias("_is_return"),
        delay.cast("bigint").alias("_delay_days"),
    )


def _lines(orders: DataFrame, draws: Draws, period: P.Period) -> DataFrame:
    """Lines 1.._n_items of each order and, for a returned order, line 0: the return row.

    One explode gives both; the return row recomputes the line it returns (``_line``) from the
    same hashes. Returns that would fall on or after the end date are dropped.
    """
    j, n_items, sec = F.col("_j"), F.col("_n_items"), F.col("_sec")
    lines = orders.select(
        "*", F.explode(F.sequence(F.when(F.col("_is_return"), 0).otherwise(1), n_items)).alias("_j")
    )
    returned_line = 1 + floor_int(draws.uniform(P.S_RETURN_LINE) * n_items)
    lines = lines.select("*", F.when(j == 0, returned_line).otherwise(j).alias("_line"))
    return_sec = (
        sec
        + F.col("_delay_days") * 86400
        + F.floor(draws.uniform(P.S_RETURN_TIME) * 14400.0).cast("bigint")
    )
    line_price = F.exp(draws.normal(P.S_LINE_PRICE, "_line") * P.LINE_PRICE_SIGMA)
    return lines.withColumns(
        {
            "_target": F.col("_spend") * line_price,
            "_qty": F.least(1 + geometric(draws.uniform(P.S_QTY, "_line"), 0.2), F.lit(10)),
            "_u_discount": draws.uniform(P.S_DISCOUNT, "_line"),
            "_ts_sec": F.when(j == 0, return_sec).otherwise(sec),
        }
    ).filter(F.col("_ts_sec") < period.end_epoch)


def _priced(lines: DataFrame, draws: Draws, catalogue: Catalogue) -> DataFrame:
    """Lines with their product (by price rank), amount in cents and the quantity returned."""
    lines = lines.withColumns({"_rank": catalogue.rank_for_price(F.col("_target"))})
    qty, u_discount = F.col("_qty"), F.col("_u_discount")
    # 12% of lines carry a 10% or 20% discount
    percent = F.when(u_discount < 0.08, 90).when(u_discount < 0.12, 80).otherwise(100)
    cents = F.floor((catalogue.price_cents(F.col("_rank")) * qty * percent + 50) / 100.0)
    returned = F.when(qty <= 1, qty).otherwise(1 + floor_int(draws.uniform(P.S_RETURN_QTY) * qty))
    return lines.withColumns({"_cents": cents, "_returned_qty": returned})


def _output_columns(lines: DataFrame, catalogue: Catalogue) -> DataFrame:
    """The public columns (:data:`TRANSACTIONS_SCHEMA`); returns are negative."""
    j, cents, qty, returned = (F.col(c) for c in ("_j", "_cents", "_qty", "_returned_qty"))
    is_return = j == 0
    refund = -F.floor(cents * returned / qty + 0.5)
    return lines.select(
        "customer_id",
        "order_id",
        j.cast("int").alias("line_no"),
        F.timestamp_seconds(F.col("_ts_sec")).alias("order_ts"),
        money(F.when(is_return, refund).otherwise(cents)).alias("amount"),
        catalogue.product_id(F.col("_rank")).alias("product_id"),
        F.when(is_return, -returned).otherwise(qty).cast("int").alias("quantity"),
        "channel",
    )


def transactions_df(
    spark: SparkSession,
    *,
    customers: int = 20000,
    days: int = 730,
    end_date: dt.date = P.DEFAULT_END_DATE,
    seed: int = 42,
    products: int = 500,
    partitions: int | None = None,
    effect: PlantedEffect | None = None,
) -> DataFrame:
    """The transactions (order lines and returns), lazily defined; no shuffle, nothing collected.

    Orders are exploded from the customer rows (Poisson count over each customer's active days,
    uniform days, afternoon-peaked times), lines from the orders; returns recompute the line they
    return from the same hashes.

    Args:
        spark: the session.
        customers: number of customers.
        days: length of the period ``[end_date - days, end_date)``.
        end_date: every ``order_ts`` is strictly before this date, 00:00 UTC.
        seed: random seed; same arguments give the same rows whatever ``partitions`` is.
        products: size of the product catalogue (see :func:`products_df`).
        partitions: number of partitions (= output files); default: the default parallelism,
            more so that partitions hold about 2M rows.
        effect: a campaign effect to plant (extra orders for its treatment arm), or None.

    Returns:
        One row per order line or return (:data:`TRANSACTIONS_SCHEMA`): ``customer_id``
        (string), ``order_id`` (string, ``O`` + customer number + 5-digit order number, not in
        time order; shared by all lines of an order and by its return), ``line_no`` (int:
        1..n for the lines of an order, 0 for its return row, so no two rows are identical),
        ``order_ts`` (timestamp; the same for all lines of an order; a return has its own, 2-29
        days later, and returns that would fall on or after ``end_date`` are dropped),
        ``amount`` (decimal(12,2); negative for returns), ``product_id`` (string), ``quantity``
        (int; negative for returns), ``channel`` (string: web/app/store, the order's).

    Raises:
        UsageError: invalid sizes, date or seed.
    """
    check_args(customers, days, end_date, seed)
    check_int("products", products, 1, "--products")
    parts = partitions or default_partitions(spark, customers, days)
    check_int("partitions", parts, 1, "--partitions")
    catalogue = Catalogue.of(products, seed)
    period = P.Period(days, end_date)
    if effect is not None:
        effect.check(period)
    draws = Draws(seed, ("_c", "_k"))
    base = customer_base(spark, customers=customers, period=period, seed=seed, partitions=parts)
    planted = planted_orders(base, effect, seed, period) if effect else None
    orders = _timed_orders(_orders(base, draws, customers, planted), draws, period)
    lines = _priced(_lines(orders, draws, period), draws, catalogue)
    return _output_columns(lines, catalogue)
