"""Synthetic demo and benchmark data: transactions, customers and products.

Everything is built by Spark itself from ``spark.range`` and built-in functions: no Python UDFs,
no driver-side loops over rows, nothing collected. Randomness is not ``F.rand`` but a hash of
``(seed, purpose, customer, order, line)`` turned into a uniform number, so every value is a pure
function of its keys: the same seed, sizes and end date give the same rows whatever the number
of partitions or executors, and no shuffle is ever needed (transactions are exploded from the
customer rows, the product catalogue is a closed-form function of the product index).

Customers belong to one of six planted personas that are well separated in recency / frequency
/ monetary space at a snapshot on ``end_date`` with a 365-day lookback (rates per year, median
unit price of a line; every customer draws its own rate and spend level around them):

===========================  ========  ==========  ==========================================
persona                      orders/y  unit price  activity
===========================  ========  ==========  ==========================================
champions                    24        70          whole period, still active
frequent_small_spenders      30        7           whole period, still active
occasional_mid_spenders      5         35          whole period, still active
one_time_buyers              (1)       25          exactly one order, uniform over the period
lapsed_regulars              20        40          from the start until a dropout 120-270
                                                   days before ``end_date``
new_customers                12        20          signed up in the last 90 days; first
                                                   order on the signup day
===========================  ========  ==========  ==========================================

Individual rates are the persona rate times a lognormal factor (sigma 0.4) and order counts
are Poisson given the rate and the customer's active days; spend levels are the persona price
times a lognormal factor (sigma 0.35) and every line varies again around it (sigma 0.5). About
15% of the established customers signed up during the first half of the period. When ``days``
is shorter than 730 the dropout and "new" windows shrink in proportion.

About 3% of orders get a return row. About 8% of the lapsed regulars (when ``days >= 420``)
stopped buying just over 365 days before ``end_date`` and returned their last order inside the
last 365 days, so "returns only" customers exist at a snapshot on ``end_date``.

At the default size (730 days) the output has about 14 transaction rows per customer-year
(about 17.5 orders and 28.5 rows per customer over 2 years): 20,000 customers give ~0.57M rows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import UsageError

__all__ = [
    "CHANNELS",
    "PERSONAS",
    "ROWS_PER_CUSTOMER_YEAR",
    "GenerateSummary",
    "customers_df",
    "generate",
    "products_df",
    "transactions_df",
]

PERSONAS: tuple[str, ...] = (
    "champions",
    "frequent_small_spenders",
    "occasional_mid_spenders",
    "one_time_buyers",
    "lapsed_regulars",
    "new_customers",
)
CHANNELS: tuple[str, ...] = ("web", "app", "store")

# Approximate transaction rows per customer and year at the default 730 days (used to size
# partitions; the measured value is 14.3).
ROWS_PER_CUSTOMER_YEAR = 14.3
DEFAULT_END_DATE = dt.date(2026, 11, 23)

# Per persona, in the order of PERSONAS.
_SHARE = (0.12, 0.16, 0.20, 0.22, 0.15, 0.15)
_RATE_PER_YEAR = (24.0, 30.0, 6.0, 0.0, 30.0, 12.0)
_UNIT_PRICE = (90.0, 5.0, 45.0, 25.0, 45.0, 20.0)
_MEAN_AGE = (45.0, 33.0, 42.0, 38.0, 47.0, 30.0)
_EMAIL_OPT_IN = (0.75, 0.6, 0.45, 0.25, 0.5, 0.55)
_CHAMPIONS, _FREQUENT, _OCCASIONAL, _ONE_TIME, _LAPSED, _NEW = range(6)

_DROPOUT_DAYS = (100, 220)  # lapsed regulars stop this many days before end_date
_NEW_WINDOW_DAYS = 60  # new customers signed up within this many days before end_date
_RATE_SIGMA = 0.3
_SPEND_SIGMA = 0.3
_LINE_PRICE_SIGMA = 0.5
_RETURN_RATE = 0.03
_RETURNS_ONLY_SHARE_OF_LAPSED = 0.08
_RETURNS_ONLY_MIN_DAYS = 420
_LOOKBACK_DAYS = 365
_FULL_DAYS = 730  # periods shorter than this shrink the dropout and "new" windows
_MAX_ORDERS = 99_999  # order numbers are 5 digits per customer
_ROWS_PER_PARTITION = 2_000_000
_CUSTOMERS_PER_PARTITION = 1_000_000

# Product catalogue: price of the product at rank i of P is the lognormal quantile at
# (i + 0.5) / P (logistic approximation of the normal quantile, so it can be inverted in SQL).
_PRICE_MEDIAN = 25.0
_PRICE_SIGMA = 1.1
_LOGISTIC_K = 1.702
_CATEGORIES = ("grocery", "beauty", "books", "toys", "home", "fashion", "sports", "electronics")

_GENDERS = (("female", 0.5), ("male", 0.47), ("other", 0.03))
# (country, share, ((region, city), ...)); cities within a country get Zipf weights 1/(rank).
_COUNTRIES: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    (
        "US",
        0.36,
        (
            ("California", "Los Angeles"),
            ("New York", "New York"),
            ("Texas", "Houston"),
            ("Illinois", "Chicago"),
            ("Washington", "Seattle"),
        ),
    ),
    (
        "GB",
        0.20,
        (
            ("England", "London"),
            ("England", "Manchester"),
            ("Scotland", "Glasgow"),
            ("England", "Birmingham"),
            ("Wales", "Cardiff"),
        ),
    ),
    (
        "DE",
        0.14,
        (
            ("Berlin", "Berlin"),
            ("Bavaria", "Munich"),
            ("Hamburg", "Hamburg"),
            ("North Rhine-Westphalia", "Cologne"),
            ("Hesse", "Frankfurt"),
        ),
    ),
    (
        "FR",
        0.10,
        (
            ("Ile-de-France", "Paris"),
            ("Auvergne-Rhone-Alpes", "Lyon"),
            ("Provence-Alpes-Cote d'Azur", "Marseille"),
            ("Occitanie", "Toulouse"),
        ),
    ),
    (
        "NL",
        0.08,
        (("North Holland", "Amsterdam"), ("South Holland", "Rotterdam"), ("Utrecht", "Utrecht")),
    ),
    ("ES", 0.06, (("Madrid", "Madrid"), ("Catalonia", "Barcelona"), ("Valencia", "Valencia"))),
    ("SE", 0.04, (("Stockholm", "Stockholm"), ("Vastra Gotaland", "Gothenburg"))),
    ("IE", 0.02, (("Leinster", "Dublin"), ("Munster", "Cork"))),
)

# Hash salts, one per random quantity (normals use salt and salt + 1).
_S_PERSONA, _S_AGE, _S_GENDER, _S_COUNTRY, _S_CITY = 10, 20, 30, 40, 50
_S_SIGNUP_KIND, _S_SIGNUP, _S_CHANNEL, _S_EMAIL, _S_PUSH, _S_SMS = 60, 70, 80, 90, 100, 110
_S_RATE, _S_SPEND, _S_DROPOUT, _S_RET_ONLY, _S_ANCHOR, _S_POISSON = 120, 130, 140, 150, 160, 170
_S_ORDER_DAY, _S_ORDER_TIME, _S_ORDER_CHANNEL, _S_ITEMS, _S_RETURN = 200, 210, 220, 230, 240
_S_RETURN_LINE, _S_RETURN_DELAY, _S_RETURN_QTY, _S_RETURN_TIME = 250, 260, 270, 280
_S_LINE_PRICE, _S_QTY, _S_DISCOUNT, _S_CATEGORY = 300, 310, 320, 330

_MASK53 = (1 << 53) - 1

TRANSACTIONS_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("order_id", T.StringType()),
        T.StructField("order_ts", T.TimestampType()),
        T.StructField("amount", T.DecimalType(12, 2)),
        T.StructField("product_id", T.StringType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("channel", T.StringType()),
    ]
)
CUSTOMERS_COLUMNS = (
    "customer_id",
    "persona",
    "age",
    "gender",
    "country",
    "region",
    "city",
    "signup_date",
    "preferred_channel",
    "email_opt_in",
    "push_opt_in",
    "sms_opt_in",
)


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: the output directory (``transactions``, ``customers``, ``products`` below it).
        customers: rows in ``customers``.
        transactions: rows in ``transactions`` (counted on the written Parquet).
        products: rows in ``products``.
        start_date: first day covered (``end_date - days``).
        end_date: every ``order_ts`` is strictly before this date, 00:00 UTC.
        seed: the seed used.
    """

    out_dir: str
    customers: int
    transactions: int
    products: int
    start_date: dt.date
    end_date: dt.date
    seed: int


# ---------------------------------------------------------------------------------------------
# Column helpers
# ---------------------------------------------------------------------------------------------


def _uniform(seed: int, salt: int, *keys: Column) -> Column:
    """Uniform double in [0, 1), a pure function of the seed, the salt and the key columns."""
    h = F.xxhash64(F.lit(seed).cast("long"), F.lit(salt), *keys)
    return h.bitwiseAND(F.lit(_MASK53)).cast("double") / float(1 << 53)


def _normal(seed: int, salt: int, *keys: Column) -> Column:
    """Standard normal (Box-Muller on two hash uniforms)."""
    u1 = _uniform(seed, salt, *keys)
    u2 = _uniform(seed, salt + 1, *keys)
    return F.sqrt(F.log(1.0 - u1) * -2.0) * F.cos(u2 * (2.0 * math.pi))


def _pick_index(u: Column, weights: Sequence[float]) -> Column:
    """0-based index drawn with the given weights from a uniform column."""
    total = float(sum(weights))
    cum = 0.0
    expr: Column | None = None
    for i, w in enumerate(weights[:-1]):
        cum += w / total
        expr = F.when(u < cum, F.lit(i)) if expr is None else expr.when(u < cum, F.lit(i))
    last = F.lit(len(weights) - 1)
    return last if expr is None else expr.otherwise(last)


def _element(values: Sequence[object], index0: Column) -> Column:
    """``values[index0]`` from a literal array."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), index0 + 1)


def _geometric(u: Column, q: float) -> Column:
    """Number of successes before the first failure, P(X >= m) = q**m (mean q / (1 - q))."""
    return F.floor(F.log(1.0 - u) / math.log(q)).cast("int")


def _poisson(lam: Column, u: Column, z: Column) -> Column:
    """Poisson draw for mean ``lam``: exact inverse CDF below 30, normal approximation above."""

    def step(acc: Column, _k: Column) -> Column:
        nxt = acc["p"] * lam / (acc["n"] + 1)
        return F.when(
            acc["cdf"] < u,
            F.struct(
                (acc["n"] + 1).alias("n"), nxt.alias("p"), (acc["cdf"] + nxt).alias("cdf")
            ),
        ).otherwise(acc)

    start = F.struct(
        F.lit(0).alias("n"), F.exp(-lam).alias("p"), F.exp(-lam).alias("cdf")
    )
    # Steps up to lam + 6 sd: the tail beyond has probability < 1e-7.
    steps = F.floor(lam + F.sqrt(lam) * 6.0 + 6.0).cast("int")
    exact = F.aggregate(F.sequence(F.lit(0), steps), start, step, lambda acc: acc["n"])
    approx = F.greatest(F.lit(0), F.floor(lam + F.sqrt(lam) * z + 0.5).cast("int"))
    return F.least(F.when(lam < 30.0, exact).otherwise(approx), F.lit(_MAX_ORDERS))


def _catalogue_quantile(rank: Column, n_products: int) -> Column:
    return (rank.cast("double") + 0.5) / float(n_products)


def _price_cents(rank: Column, n_products: int) -> Column:
    """Price in cents (long) of the product at price rank ``rank`` (0-based, ascending)."""
    p = _catalogue_quantile(rank, n_products)
    x = F.exp(
        F.lit(math.log(_PRICE_MEDIAN)) + F.log(p / (1.0 - p)) * (_PRICE_SIGMA / _LOGISTIC_K)
    )
    # Shop-like prices: x.99 from 5 up, whole cents below, at least 0.49.
    cents = F.when(x < 5.0, F.round(x * 100.0)).otherwise(F.ceil(x) * 100 - 1).cast("long")
    return F.greatest(cents, F.lit(49))


def _money(cents: Column) -> Column:
    """Whole cents (long) -> decimal(12,2). Money is computed in integer cents because decimal
    arithmetic goes through java.math.BigDecimal and was a third of the generation time."""
    return (cents / 100.0).cast(T.DecimalType(12, 2))


def _rank_for_price(target: Column, n_products: int) -> Column:
    """Price rank (0-based) whose catalogue price is closest to ``target``: inverse of _price."""
    z = (F.log(target) - math.log(_PRICE_MEDIAN)) * (_LOGISTIC_K / _PRICE_SIGMA)
    q = F.lit(1.0) / (F.exp(-z) + 1.0)
    rank = F.floor(q * float(n_products)).cast("long")
    return F.least(F.greatest(rank, F.lit(0)), F.lit(n_products - 1))


@dataclass(frozen=True)
class _Catalogue:
    """Product ids are an affine permutation of the price ranks (so ids do not sort by price)."""

    size: int
    mult: int
    add: int
    width: int

    @classmethod
    def of(cls, size: int, seed: int) -> _Catalogue:
        rng = random.Random(f"rfm-spark-catalogue-{seed}-{size}")
        mult = rng.randrange(1, max(size, 2))
        while math.gcd(mult, size) != 1:
            mult += 1
        return cls(size, mult % size or 1, rng.randrange(size), max(5, len(str(size))))

    def product_id(self, rank: Column) -> Column:
        number = (rank * self.mult + self.add) % self.size + 1
        return _padded("P", number, self.width)


def _padded(prefix: str, *parts: Column | int) -> Column:
    """``prefix`` + zero-padded numbers: ``_padded("C", col, 8)`` -> ``C00000042``.

    ``parts`` alternate a number column and its width (lpad is much faster than format_string).
    """
    cols: list[Column] = [F.lit(prefix)]
    for number, width in zip(parts[::2], parts[1::2], strict=True):
        assert isinstance(number, Column) and isinstance(width, int)
        cols.append(F.lpad(number.cast("string"), width, "0"))
    return F.concat(*cols)


def _id_width(customers: int) -> int:
    return max(8, len(str(customers)))


def _epoch_seconds(day: dt.date) -> int:
    return calendar.timegm(day.timetuple())


# ---------------------------------------------------------------------------------------------
# Validation and sizing
# ---------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}; pass e.g. {flag} 1000")
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}; pass {flag} {minimum}")
    return value


def _check_args(customers: int, days: int, end_date: dt.date, seed: int) -> None:
    _check_int("customers", customers, 1, "--customers")
    _check_int("days", days, 1, "--days")
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        raise UsageError(f"seed must be a 64-bit whole number, got {seed!r}; pass e.g. --seed 42")
    if isinstance(end_date, dt.datetime) or not isinstance(end_date, dt.date):
        raise UsageError(
            f"end_date must be a date, got {end_date!r}; pass e.g. --end-date 2026-11-23"
        )
    if end_date.toordinal() - days < dt.date(1900, 1, 1).toordinal():
        raise UsageError(f"end_date {end_date} minus {days} days is before 1900; use fewer days")


def estimated_transaction_rows(customers: int, days: int) -> int:
    """Rough number of transaction rows for a size (used to choose the partition count)."""
    return int(customers * max(days, 30) / 365.0 * ROWS_PER_CUSTOMER_YEAR)


def default_partitions(spark: SparkSession, customers: int, days: int) -> int:
    """Partitions of the transactions: the default parallelism, more for big sizes (~2M rows)."""
    parallelism = spark.sparkContext.defaultParallelism
    by_size = math.ceil(estimated_transaction_rows(customers, days) / _ROWS_PER_PARTITION)
    return max(1, min(parallelism, math.ceil(customers / 1000)), by_size)


# ---------------------------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------------------------


def _customer_base(
    spark: SparkSession,
    *,
    customers: int,
    days: int,
    end_date: dt.date,
    seed: int,
    partitions: int,
) -> DataFrame:
    """Customers with the public columns plus the hidden ``_``-columns the orders are drawn from.

    Day numbers (``_signup``, ``_a``, ``_b``, ``_anchor``) count from the start date (day 0) to
    ``days`` (= ``end_date``, exclusive).
    """
    start_date = end_date - dt.timedelta(days=days)
    scale = min(1.0, days / _FULL_DAYS)
    c = F.col("_c")

    def u(salt: int) -> Column:
        return _uniform(seed, salt, c)

    def n(salt: int) -> Column:
        return _normal(seed, salt, c)

    persona_idx = _pick_index(u(_S_PERSONA), _SHARE)
    p = F.col("_p")
    age = F.least(
        F.greatest(F.round(_element(_MEAN_AGE, p) + n(_S_AGE) * 13.0), F.lit(18)), F.lit(90)
    ).cast("int")

    country_idx = _pick_index(u(_S_COUNTRY), [share for _, share, _ in _COUNTRIES])
    city_idx: Column | None = None
    offset = 0
    for i, (_, _, places) in enumerate(_COUNTRIES):
        local = _pick_index(u(_S_CITY), [1.0 / (r + 1) for r in range(len(places))]) + offset
        cond = F.col("_country_idx") == i
        city_idx = F.when(cond, local) if city_idx is None else city_idx.when(cond, local)
        offset += len(places)
    assert city_idx is not None
    regions = [region for _, _, places in _COUNTRIES for region, _ in places]
    cities = [city for _, _, places in _COUNTRIES for _, city in places]

    # Signup day: established personas mostly before the start (up to 3 years), 15% during the
    # first half of the period; lapsed regulars always before it. One-time buyers signed up at
    # most 30 days before their single order, new customers in the last 90 days.
    new_window = max(1, round(_NEW_WINDOW_DAYS * scale))
    before_start = -F.floor(u(_S_SIGNUP) * 1095).cast("int") - 1
    during = F.floor(u(_S_SIGNUP) * (days / 2.0)).cast("int")
    # A single order in the last weeks is a new customer's, so one-time buyers bought before.
    anchor_one_time = F.floor(u(_S_ANCHOR) * max(1, days - new_window)).cast("int")
    new_signup = F.lit(days - new_window) + F.floor(u(_S_SIGNUP) * new_window).cast("int")
    signup = (
        F.when(p == _ONE_TIME, F.col("_anchor") - F.floor(u(_S_SIGNUP) * 30).cast("int"))
        .when(p == _NEW, new_signup)
        .when((p != _LAPSED) & (u(_S_SIGNUP_KIND) < 0.15), during)
        .otherwise(before_start)
    )

    # Lapsed regulars drop out 120-270 days before the end (scaled for short periods); some
    # drop out just over a year before it and return their last order inside the last year.
    returns_only_ok = days >= _RETURNS_ONLY_MIN_DAYS
    gap = F.lit(3) + F.floor(u(_S_DROPOUT) * 18).cast("int")
    dropout_before_end = F.lit(float(_DROPOUT_DAYS[0])) + u(_S_DROPOUT) * float(
        _DROPOUT_DAYS[1] - _DROPOUT_DAYS[0]
    )
    dropout = F.lit(days) - F.round(dropout_before_end * scale).cast("int")
    returns_only = (p == _LAPSED) & (u(_S_RET_ONLY) < _RETURNS_ONLY_SHARE_OF_LAPSED)
    returns_only = returns_only & F.lit(returns_only_ok)
    active_end = (
        F.when(F.col("_returns_only"), F.lit(days - _LOOKBACK_DAYS) - gap)
        .when(p == _LAPSED, F.greatest(dropout, F.lit(1)))
        .otherwise(F.lit(days))
    )
    anchor = (
        F.when(p == _ONE_TIME, anchor_one_time)
        .when(p == _NEW, F.col("_signup"))
        .when(F.col("_returns_only"), F.col("_b"))
    )

    rate = _element(_RATE_PER_YEAR, p) * F.exp(
        n(_S_RATE) * _RATE_SIGMA - _RATE_SIGMA**2 / 2.0
    )
    spend = _element(_UNIT_PRICE, p) * F.exp(n(_S_SPEND) * _SPEND_SIGMA)
    active_days = F.greatest(F.col("_b") - F.col("_a"), F.lit(0))
    lam = F.col("_rate") * active_days / 365.0
    n_extra = F.when(p == _ONE_TIME, F.lit(0)).otherwise(
        _poisson(lam, u(_S_POISSON), n(_S_POISSON + 2))
    )

    age_c = F.col("age") - 18
    p_app = F.least(F.greatest(F.lit(0.55) - age_c * 0.008, F.lit(0.05)), F.lit(0.6))
    p_store = F.least(F.greatest(F.lit(0.05) + age_c * 0.006, F.lit(0.05)), F.lit(0.45))
    u_ch = u(_S_CHANNEL)
    preferred = (
        F.when(u_ch < p_app, F.lit("app"))
        .when(u_ch < p_app + p_store, F.lit("store"))
        .otherwise(F.lit("web"))
    )

    return (
        spark.range(1, customers + 1, 1, numPartitions=partitions)
        .select(F.col("id").alias("_c"))
        .withColumn("_p", persona_idx)
        .withColumn("_country_idx", country_idx)
        .withColumn("_anchor", F.when(p == _ONE_TIME, anchor_one_time))
        .withColumn("_signup", signup)
        .withColumn("_returns_only", returns_only)
        .withColumn("_a", F.greatest(F.col("_signup"), F.lit(0)))
        .withColumn("_b", active_end)
        .withColumn("_anchor", anchor)
        .withColumn("_rate", rate)
        .withColumn("_spend", spend)
        .withColumn("_n_extra", n_extra)
        .withColumn("age", age)
        .withColumn("_city_idx", city_idx)
        .select(
            "*",
            _padded("C", c, _id_width(customers)).alias("customer_id"),
            _element(PERSONAS, p).alias("persona"),
            _element([g for g, _ in _GENDERS], _pick_index(u(_S_GENDER), [w for _, w in _GENDERS]))
            .alias("gender"),
            _element([code for code, _, _ in _COUNTRIES], F.col("_country_idx")).alias("country"),
            _element(regions, F.col("_city_idx")).alias("region"),
            _element(cities, F.col("_city_idx")).alias("city"),
            F.date_add(F.lit(start_date), F.col("_signup")).alias("signup_date"),
            preferred.alias("preferred_channel"),
            (u(_S_EMAIL) < _element(_EMAIL_OPT_IN, p)).alias("email_opt_in"),
            (u(_S_PUSH) < F.when(preferred == "app", 0.7).otherwise(0.2)).alias("push_opt_in"),
            (u(_S_SMS) < 0.25).alias("sms_opt_in"),
        )
    )


def customers_df(
    spark: SparkSession,
    *,
    customers: int = 20000,
    days: int = 730,
    end_date: dt.date = DEFAULT_END_DATE,
    seed: int = 42,
    partitions: int | None = None,
) -> DataFrame:
    """The customers table, lazily defined (nothing runs until an action).

    Args:
        spark: the session.
        customers: number of customers (ids ``C00000001`` .. fixed width, at least 8 digits).
        days: length of the period; the period is ``[end_date - days, end_date)``.
        end_date: first day after the period.
        seed: random seed; same arguments give the same rows.
        partitions: number of partitions; default one per million customers.

    Returns:
        One row per customer: ``customer_id`` (string), ``persona`` (string, one of
        :data:`PERSONAS`), ``age`` (int, 18-90), ``gender`` (string: female/male/other),
        ``country`` (string, ISO code, skewed sizes), ``region``, ``city`` (strings),
        ``signup_date`` (date), ``preferred_channel`` (string: web/app/store),
        ``email_opt_in``, ``push_opt_in``, ``sms_opt_in`` (booleans).

    Raises:
        UsageError: invalid sizes, date or seed.
    """
    _check_args(customers, days, end_date, seed)
    parts = partitions or max(1, math.ceil(customers / _CUSTOMERS_PER_PARTITION))
    _check_int("partitions", parts, 1, "--partitions")
    base = _customer_base(
        spark, customers=customers, days=days, end_date=end_date, seed=seed, partitions=parts
    )
    return base.select(*CUSTOMERS_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------------------------


def products_df(spark: SparkSession, *, products: int = 500, seed: int = 42) -> DataFrame:
    """The product catalogue, lazily defined.

    Prices follow a lognormal distribution (median 25, from under 1 to a few thousand); the
    category is correlated with the price (grocery cheapest, electronics dearest).

    Args:
        spark: the session.
        products: number of products (ids ``P00001`` .., fixed width).
        seed: random seed (permutes ids and categories).

    Returns:
        One row per product: ``product_id`` (string), ``category`` (string),
        ``price`` (decimal(12,2)).

    Raises:
        UsageError: ``products`` is not a positive whole number.
    """
    _check_int("products", products, 1, "--products")
    catalogue = _Catalogue.of(products, seed)
    rank = F.col("id")
    q = _catalogue_quantile(rank, products) + _normal(seed, _S_CATEGORY, rank) * 0.12
    cat = F.least(F.greatest(F.floor(q * len(_CATEGORIES)), F.lit(0)), F.lit(len(_CATEGORIES) - 1))
    return spark.range(0, products, 1, numPartitions=1).select(
        catalogue.product_id(rank).alias("product_id"),
        _element(_CATEGORIES, cat.cast("int")).alias("category"),
        _money(_price_cents(rank, products)).alias("price"),
    )


# ---------------------------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------------------------


def _line_columns(
    seed: int, catalogue: _Catalogue, line: Column
) -> tuple[Column, Column, Column]:
    """product_id, quantity (int) and amount in cents (long) of line ``line`` of an order.

    Needs ``_c``, ``_k`` and ``_spend``; a pure function of them, so a return row can recompute
    the line it returns.
    """
    keys = (F.col("_c"), F.col("_k"), line)
    target = F.col("_spend") * F.exp(_normal(seed, _S_LINE_PRICE, *keys) * _LINE_PRICE_SIGMA)
    rank = _rank_for_price(target, catalogue.size)
    quantity = F.least(F.lit(1) + _geometric(_uniform(seed, _S_QTY, *keys), 0.2), F.lit(10))
    u_disc = _uniform(seed, _S_DISCOUNT, *keys)
    percent_paid = F.when(u_disc < 0.08, 90).when(u_disc < 0.12, 80).otherwise(100)
    gross = _price_cents(rank, catalogue.size) * quantity * percent_paid
    return catalogue.product_id(rank), quantity.cast("int"), F.floor((gross + 50) / 100.0)


def transactions_df(
    spark: SparkSession,
    *,
    customers: int = 20000,
    days: int = 730,
    end_date: dt.date = DEFAULT_END_DATE,
    seed: int = 42,
    products: int = 500,
    partitions: int | None = None,
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

    Returns:
        One row per order line or return: ``customer_id`` (string), ``order_id`` (string,
        ``O`` + customer number + 5-digit order number; shared by all lines of an order and by
        its return), ``order_ts`` (timestamp; the same for all lines of an order, a return has
        its own, 2-29 days later), ``amount`` (decimal(12,2); negative for returns),
        ``product_id`` (string), ``quantity`` (int; negative for returns), ``channel``
        (string: web/app/store).

    Raises:
        UsageError: invalid sizes, date or seed.
    """
    _check_args(customers, days, end_date, seed)
    _check_int("products", products, 1, "--products")
    parts = partitions or default_partitions(spark, customers, days)
    _check_int("partitions", parts, 1, "--partitions")
    catalogue = _Catalogue.of(products, seed)
    start_epoch = _epoch_seconds(end_date - dt.timedelta(days=days))
    end_epoch = _epoch_seconds(end_date)
    width = _id_width(customers)

    c, k = F.col("_c"), F.col("_k")
    base = _customer_base(
        spark, customers=customers, days=days, end_date=end_date, seed=seed, partitions=parts
    )
    has_anchor = F.col("_anchor").isNotNull()
    is_anchor = has_anchor & (k == 0)
    span = F.greatest(F.col("_b") - F.col("_a"), F.lit(1))
    day = F.when(is_anchor, F.col("_anchor")).otherwise(
        F.col("_a") + F.floor(_uniform(seed, _S_ORDER_DAY, c, k) * span).cast("int")
    )
    hour = F.pmod(_normal(seed, _S_ORDER_TIME, c, k) * 4.5 + 13.5, F.lit(24.0))
    seconds = F.lit(start_epoch) + day.cast("long") * 86400 + F.floor(hour * 3600).cast("long")
    u_ch = _uniform(seed, _S_ORDER_CHANNEL, c, k)
    channel = F.when(u_ch < 0.7, F.col("preferred_channel")).otherwise(
        _element(CHANNELS, F.floor((u_ch - 0.7) / 0.3 * 3).cast("int"))
    )
    n_items = F.least(F.lit(1) + _geometric(_uniform(seed, _S_ITEMS, c, k), 0.375), F.lit(12))
    forced = F.col("_returns_only") & is_anchor
    is_return = forced | (_uniform(seed, _S_RETURN, c, k) < _RETURN_RATE)
    # A forced return (returns-only customers) lands inside the last 365 days.
    delay_days = F.when(
        forced,
        F.lit(days - _LOOKBACK_DAYS + 1) - day + F.floor(_uniform(seed, _S_RETURN_DELAY, c, k) * 20),
    ).otherwise(F.lit(2) + F.floor(_uniform(seed, _S_RETURN_DELAY, c, k) * 28))

    n_orders = F.col("_n_extra") + F.when(has_anchor, 1).otherwise(0)
    orders = base.select(
        "_c",
        "customer_id",
        "_spend",
        "_returns_only",
        "_a",
        "_b",
        "_anchor",
        "preferred_channel",
        F.explode(
            F.when(
                n_orders > 0,
                F.sequence(F.when(has_anchor, F.lit(0)).otherwise(F.lit(1)), F.col("_n_extra")),
            ).otherwise(F.array().cast(T.ArrayType(T.IntegerType())))
        ).alias("_k"),
    ).select(
        "_c",
        "_k",
        "_spend",
        "customer_id",
        _padded("O", c, width, k, 5).alias("order_id"),
        seconds.alias("_sec"),
        channel.alias("channel"),
        n_items.alias("_n_items"),
        is_return.alias("_is_return"),
        delay_days.cast("long").alias("_delay_days"),
    )

    # One explode gives the lines 1..n_items of an order and, for a returned order, line 0:
    # the return row, which recomputes the returned line from the same hashes.
    j = F.col("_j")
    is_ret_row = j == 0
    ret_line = F.lit(1) + F.floor(_uniform(seed, _S_RETURN_LINE, c, k) * F.col("_n_items")).cast(
        "int"
    )
    ret_sec = (
        F.col("_sec")
        + F.col("_delay_days") * 86400
        + F.floor(_uniform(seed, _S_RETURN_TIME, c, k) * 4 * 3600).cast("long")
    )
    qty = F.col("_qty")
    returned_qty = F.when(qty <= 1, qty).otherwise(
        F.lit(1) + F.floor(_uniform(seed, _S_RETURN_QTY, c, k) * qty).cast("int")
    )
    product_id, line_qty, line_cents = _line_columns(
        seed, catalogue, F.when(is_ret_row, ret_line).otherwise(j)
    )
    return (
        orders.select(
            "*",
            F.explode(
                F.sequence(F.when(F.col("_is_return"), 0).otherwise(1), F.col("_n_items"))
            ).alias("_j"),
        )
        .select(
            "customer_id",
            "order_id",
            F.when(is_ret_row, ret_sec).otherwise(F.col("_sec")).alias("_ts_sec"),
            line_cents.alias("_cents"),
            product_id.alias("product_id"),
            line_qty.alias("_qty"),
            "channel",
            "_j",
            "_c",
            "_k",
        )
        .filter(F.col("_ts_sec") < end_epoch)
        .select(
            "customer_id",
            "order_id",
            F.timestamp_seconds(F.col("_ts_sec")).alias("order_ts"),
            _money(
                F.when(is_ret_row, -F.floor(F.col("_cents") * returned_qty / qty + 0.5)).otherwise(
                    F.col("_cents")
                )
            ).alias("amount"),
            "product_id",
            F.when(is_ret_row, -returned_qty).otherwise(qty).cast("int").alias("quantity"),
            "channel",
        )
    )


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def generate(
    spark: SparkSession,
    out_dir: str,
    *,
    customers: int = 20000,
    days: int = 730,
    end_date: dt.date = DEFAULT_END_DATE,
    seed: int = 42,
    products: int = 500,
    partitions: int | None = None,
) -> GenerateSummary:
    """Write ``transactions``, ``customers`` and ``products`` as Parquet under ``out_dir``.

    Each table is written with Spark's writer in overwrite mode; nothing is collected on the
    driver. The transactions count comes from the written Parquet (a metadata-only count).

    Args:
        spark: the session.
        out_dir: output directory (local path or any Hadoop URI).
        customers: number of customers (>= 1).
        days: length of the period (>= 1); transactions fall in ``[end_date - days, end_date)``.
        end_date: first day after the period (UTC).
        seed: random seed; the same arguments give the same content.
        products: size of the product catalogue (>= 1).
        partitions: partitions (files) of the transactions; default sized for ~2M rows each.

    Returns:
        A :class:`GenerateSummary` with the row counts and the period.

    Raises:
        UsageError: invalid arguments.
    """
    _check_args(customers, days, end_date, seed)
    _check_int("products", products, 1, "--products")
    if partitions is not None:
        _check_int("partitions", partitions, 1, "--partitions")
    root = out_dir.rstrip("/")
    transactions = transactions_df(
        spark,
        customers=customers,
        days=days,
        end_date=end_date,
        seed=seed,
        products=products,
        partitions=partitions,
    )
    transactions.write.mode("overwrite").parquet(f"{root}/transactions")
    customers_df(spark, customers=customers, days=days, end_date=end_date, seed=seed).write.mode(
        "overwrite"
    ).parquet(f"{root}/customers")
    products_df(spark, products=products, seed=seed).write.mode("overwrite").parquet(
        f"{root}/products"
    )
    n_transactions = spark.read.parquet(f"{root}/transactions").count()
    return GenerateSummary(
        out_dir=out_dir,
        customers=customers,
        transactions=n_transactions,
        products=products,
        start_date=end_date - dt.timedelta(days=days),
        end_date=end_date,
        seed=seed,
    )
