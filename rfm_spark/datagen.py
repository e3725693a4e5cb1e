"""Synthetic demo and benchmark data: transactions, customers and products.

Everything is built by Spark itself from ``spark.range`` and built-in functions: no Python UDFs,
no driver-side loops over rows, nothing collected. Randomness is not ``F.rand`` but a hash of
``(seed, purpose, customer, order, line)`` turned into a uniform number, so every value is a pure
function of its keys: the same seed, sizes and end date give the same rows whatever the number
of partitions or executors, and no shuffle is ever needed (transactions are exploded from the
customer rows, the product catalogue is a closed-form function of the product index).

Customers belong to one of six planted personas that are well separated in recency / frequency
/ monetary space at a snapshot on ``end_date`` with a 365-day lookback (k-means with k=6 on
standardised log R, F, M recovers them with an adjusted Rand index of about 0.65-0.75). Rates are
orders per year, unit price the median price of a line; every customer draws its own rate and
spend level around them:

=========================  =====  ========  =====  ============================================
persona                    share  orders/y  price  activity
=========================  =====  ========  =====  ============================================
champions                  12%    24        90     whole period, still active
frequent_small_spenders    16%    30        5      whole period, still active
occasional_mid_spenders    20%    6         45     whole period, still active
one_time_buyers            22%    (1)       25     one order, any time but the last 60 days
lapsed_regulars            15%    30        45     from the start until a dropout 100-220 days
                                                   before ``end_date``
new_customers              15%    12        20     signed up in the last 60 days; first order
                                                   on the signup day
=========================  =====  ========  =====  ============================================

At a snapshot on ``end_date`` (default size) the medians are: champions R 11 days, F 23,
M 4,470; frequent small spenders R 9, F 29, M 320; occasional R 44, F 6, M 550; one-time R 214,
F 1, M 42; lapsed R 174, F 16, M 1,400; new R 14, F 2, M 65.

Individual rates are the persona rate times a lognormal factor (sigma 0.3, mean 1) and order
counts are Poisson given the rate and the customer's active days; spend levels are the persona
price times a lognormal factor (sigma 0.3) and every line varies again around it (sigma 0.5).
Orders have 1.6 lines on average (geometric), quantities are mostly 1, 12% of lines carry a
10% or 20% discount, and a line's amount is the catalogue price of its product times the
quantity. About 15% of the established customers (not the lapsed) signed up during the first
half of the period. When ``days`` is shorter than 730 the dropout and "new" windows shrink in
proportion.

About 3% of orders get a return row. About 8% of the lapsed regulars (when ``days >= 420``)
stopped buying just over 365 days before ``end_date`` and returned their last order inside the
last 365 days, so "returns only" customers exist at a snapshot on ``end_date``.

Size: about 19.7 transaction rows per customer-year at 730 days (24 orders and 39 rows per
customer over the 2 years); 20,000 customers x 730 days give ~0.79M rows, 100M rows need about
2.5M customers over 730 days (or 1.3M over 4 years; the active personas scale with ``days``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import UsageError

__all__ = [
    "CHANNELS",
    "CUSTOMERS_COLUMNS",
    "PERSONAS",
    "ROWS_PER_CUSTOMER_YEAR",
    "TRANSACTIONS_SCHEMA",
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

# Transaction rows per customer and year measured at the default 730 days (used to size
# partitions).
ROWS_PER_CUSTOMER_YEAR = 19.7
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

# Column names and types of the transactions output (nullability aside).
TRANSACTIONS_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("order_id", T.StringType()),
        T.StructField("line_no", T.IntegerType()),
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
# SQL fragments
#
# The expressions are written as Spark SQL text and applied with ``selectExpr`` in a few stages:
# built with the Column API they took ~10,000 Py4J round trips per DataFrame (seconds on a busy
# machine, before any data moved). Columns are still referred to by name.
# ---------------------------------------------------------------------------------------------


def _d(x: float) -> str:
    """A double literal."""
    return f"({float(x)!r}D)"


def _s(text: str) -> str:
    """A string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _u(seed: int, salt: int, *keys: str) -> str:
    """Uniform double in [0, 1), a pure function of the seed, the salt and the key columns."""
    h = f"xxhash64(CAST({seed} AS BIGINT), {salt}, {', '.join(keys)})"
    return f"(CAST({h} & {_MASK53} AS DOUBLE) / {_d(1 << 53)})"


def _z(seed: int, salt: int, *keys: str) -> str:
    """Standard normal (Box-Muller on two hash uniforms; uses salts ``salt`` and ``salt + 1``)."""
    u1, u2 = _u(seed, salt, *keys), _u(seed, salt + 1, *keys)
    return f"(sqrt(-2D * ln(1D - {u1})) * cos({_d(2 * math.pi)} * {u2}))"


def _floor_int(x: str) -> str:
    return f"CAST(floor({x}) AS INT)"


def _pick(u: str, weights: Sequence[float]) -> str:
    """0-based index drawn with the given weights from the uniform ``u``."""
    total = float(sum(weights))
    cum = 0.0
    whens = []
    for i, w in enumerate(weights[:-1]):
        cum += w / total
        whens.append(f"WHEN {u} < {_d(cum)} THEN {i}")
    if not whens:
        return "0"
    return f"(CASE {' '.join(whens)} ELSE {len(weights) - 1} END)"


def _at(values: Sequence[str] | Sequence[float], index0: str) -> str:
    """``values[index0]`` from a literal array."""
    items = ", ".join(_s(v) if isinstance(v, str) else _d(v) for v in values)
    return f"element_at(array({items}), ({index0}) + 1)"


def _geometric(u: str, q: float) -> str:
    """Number of successes before the first failure, P(X >= m) = q**m (mean q / (1 - q))."""
    return _floor_int(f"ln(1D - {u}) / {_d(math.log(q))}")


def _poisson(lam: str, u: str, z: str) -> str:
    """Poisson draw for mean ``lam`` (column names): exact inverse CDF below 30, normal above.

    The exact branch walks the CDF up to lam + 6 sd (the tail beyond is < 1e-7).
    """
    nxt = f"acc.p * {lam} / (acc.n + 1)"
    step = (
        f"(acc, i) -> IF(acc.cdf < {u}, "
        f"named_struct('n', acc.n + 1, 'p', {nxt}, 'cdf', acc.cdf + {nxt}), acc)"
    )
    start = f"named_struct('n', 0, 'p', exp(-{lam}), 'cdf', exp(-{lam}))"
    steps = _floor_int(f"{lam} + sqrt({lam}) * 6D + 6D")
    exact = f"aggregate(sequence(0, {steps}), {start}, {step}, acc -> acc.n)"
    approx = f"greatest(0, {_floor_int(f'{lam} + sqrt({lam}) * {z} + 0.5D')})"
    return f"least(IF({lam} < 30D, {exact}, {approx}), {_MAX_ORDERS})"


def _padded(prefix: str, *parts: str | int) -> str:
    """``prefix`` + zero-padded numbers: ``_padded("C", "_c", 8)`` -> ``C00000042``.

    ``parts`` alternate a number column and its width (lpad is much faster than format_string).
    """
    pads = [
        f"lpad(CAST({number} AS STRING), {width}, '0')"
        for number, width in zip(parts[::2], parts[1::2], strict=True)
    ]
    return f"concat({_s(prefix)}, {', '.join(pads)})"


def _catalogue_quantile(rank: str, n_products: int) -> str:
    return f"((CAST({rank} AS DOUBLE) + 0.5D) / {_d(n_products)})"


def _price_cents(rank: str, n_products: int) -> str:
    """Price in cents (bigint) of the product at price rank ``rank`` (0-based, ascending)."""
    p = _catalogue_quantile(rank, n_products)
    x = f"exp({_d(math.log(_PRICE_MEDIAN))} + ln({p} / (1D - {p})) * {_d(_PRICE_SIGMA / _LOGISTIC_K)})"
    # Shop-like prices: x.99 from 5 up, whole cents below, at least 0.49.
    cents = f"CAST(IF({x} < 5D, round({x} * 100D), ceil({x}) * 100 - 1) AS BIGINT)"
    return f"greatest({cents}, 49L)"


def _money(cents: str) -> str:
    """Whole cents (bigint) -> decimal(12,2). Money is computed in integer cents because decimal
    arithmetic goes through java.math.BigDecimal and was a third of the generation time."""
    return f"CAST(({cents}) / 100D AS DECIMAL(12,2))"


def _rank_for_price(target: str, n_products: int) -> str:
    """Price rank (0-based) whose catalogue price is closest to ``target``: inverse of the price."""
    z = f"((ln({target}) - {_d(math.log(_PRICE_MEDIAN))}) * {_d(_LOGISTIC_K / _PRICE_SIGMA)})"
    rank = f"CAST(floor({n_products}D / (exp(-{z}) + 1D)) AS BIGINT)"
    return f"least(greatest({rank}, 0L), {n_products - 1}L)"


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

    def product_id(self, rank: str) -> str:
        number = f"(({rank}) * {self.mult} + {self.add}) % {self.size} + 1"
        return _padded("P", number, self.width)


def _id_width(customers: int) -> int:
    return max(8, len(str(customers)))


def _epoch_seconds(day: dt.date) -> int:
    return calendar.timegm(day.timetuple())


def _stage(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """``df`` with the named SQL expressions added (or replaced)."""
    kept = [f"`{name}`" for name in df.columns if name not in columns]
    return df.selectExpr(*kept, *[f"{sql} AS `{name}`" for name, sql in columns.items()])


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
    ``days`` (= ``end_date``, exclusive); activity (extra orders) is in ``[_a, _b)``, and the
    "anchor" order (one-time buyers' order, new customers' first, the returned last order of
    "returns only" customers) sits on day ``_anchor``.
    """
    start_date = end_date - dt.timedelta(days=days)
    scale = min(1.0, days / _FULL_DAYS)

    def u(salt: int) -> str:
        return _u(seed, salt, "_c")

    def z(salt: int) -> str:
        return _z(seed, salt, "_c")

    city_cases = []
    offset = 0
    for i, (_, _, places) in enumerate(_COUNTRIES):
        local = _pick(u(_S_CITY), [1.0 / (r + 1) for r in range(len(places))])
        city_cases.append(f"WHEN {i} THEN {local} + {offset}")
        offset += len(places)
    regions = [region for _, _, places in _COUNTRIES for region, _ in places]
    cities = [city for _, _, places in _COUNTRIES for _, city in places]

    new_window = max(1, round(_NEW_WINDOW_DAYS * scale))
    # A single order in the last weeks is a new customer's, so one-time buyers bought before.
    one_time_span = max(1, days - new_window)
    d0, d1 = _DROPOUT_DAYS
    dropout = f"{days} - CAST(round(({_d(d0)} + _u_dropout * {_d(d1 - d0)}) * {_d(scale)}) AS INT)"
    returns_only_ok = "true" if days >= _RETURNS_ONLY_MIN_DAYS else "false"
    # Younger customers prefer the app, older ones the store.
    p_app = "least(greatest(0.55D - (age - 18) * 0.008D, 0.05D), 0.6D)"
    p_store = "least(greatest(0.05D + (age - 18) * 0.006D, 0.05D), 0.45D)"

    df = spark.range(1, customers + 1, 1, numPartitions=partitions).selectExpr("id AS _c")
    df = _stage(
        df,
        {
            "_p": _pick(u(_S_PERSONA), _SHARE),
            "_country_idx": _pick(u(_S_COUNTRY), [share for _, share, _ in _COUNTRIES]),
            "_u_signup": u(_S_SIGNUP),
            "_u_dropout": u(_S_DROPOUT),
            "_anchor_one_time": _floor_int(f"{u(_S_ANCHOR)} * {one_time_span}"),
        },
    )
    df = _stage(
        df,
        {
            "age": f"CAST(least(greatest(round({_at(_MEAN_AGE, '_p')} + {z(_S_AGE)} * 13D), 18), "
            "90) AS INT)",
            "_city_idx": f"CASE _country_idx {' '.join(city_cases)} END",
            "_rate": f"{_at(_RATE_PER_YEAR, '_p')} * "
            f"exp({z(_S_RATE)} * {_d(_RATE_SIGMA)} - {_d(_RATE_SIGMA**2 / 2)})",
            "_spend": f"{_at(_UNIT_PRICE, '_p')} * exp({z(_S_SPEND)} * {_d(_SPEND_SIGMA)})",
            # Lapsed regulars drop out 100-220 days before the end (scaled for short periods);
            # some ("returns only") 3-20 days more than a year before it, and return their last
            # order inside the last year.
            "_returns_only": f"_p = {_LAPSED} AND {u(_S_RET_ONLY)} < "
            f"{_d(_RETURNS_ONLY_SHARE_OF_LAPSED)} AND {returns_only_ok}",
            # Established personas signed up before the start (up to 3 years), 15% during the
            # first half of the period; lapsed regulars always before it. One-time buyers at
            # most 30 days before their order, new customers in the last 60 days.
            "_signup": f"""CASE
                WHEN _p = {_ONE_TIME} THEN _anchor_one_time - {_floor_int("_u_signup * 30")}
                WHEN _p = {_NEW} THEN {days - new_window} + {_floor_int(f"_u_signup * {new_window}")}
                WHEN _p != {_LAPSED} AND {u(_S_SIGNUP_KIND)} < 0.15D
                    THEN {_floor_int(f"_u_signup * {_d(days / 2)}")}
                ELSE -{_floor_int("_u_signup * 1095")} - 1 END""",
        },
    )
    df = _stage(
        df,
        {
            "_a": "greatest(_signup, 0)",
            "_b": f"""CASE
                WHEN _returns_only THEN {days - _LOOKBACK_DAYS} - 3 - {_floor_int("_u_dropout * 18")}
                WHEN _p = {_LAPSED} THEN greatest({dropout}, 1)
                ELSE {days} END""",
        },
    )
    df = _stage(
        df,
        {
            "_anchor": f"""CASE WHEN _p = {_ONE_TIME} THEN _anchor_one_time
                WHEN _p = {_NEW} THEN _signup WHEN _returns_only THEN _b END""",
            "_lam": "_rate * greatest(_b - _a, 0) / 365D",
            "_u_poisson": u(_S_POISSON),
            "_z_poisson": z(_S_POISSON + 2),
            "customer_id": _padded("C", "_c", _id_width(customers)),
            "persona": _at(PERSONAS, "_p"),
            "gender": _at([g for g, _ in _GENDERS], _pick(u(_S_GENDER), [w for _, w in _GENDERS])),
            "country": _at([code for code, _, _ in _COUNTRIES], "_country_idx"),
            "region": _at(regions, "_city_idx"),
            "city": _at(cities, "_city_idx"),
            "signup_date": f"date_add(DATE'{start_date.isoformat()}', _signup)",
            "preferred_channel": f"""CASE WHEN {u(_S_CHANNEL)} < {p_app} THEN 'app'
                WHEN {u(_S_CHANNEL)} < {p_app} + {p_store} THEN 'store' ELSE 'web' END""",
        },
    )
    return _stage(
        df,
        {
            "_n_extra": f"IF(_p = {_ONE_TIME}, 0, {_poisson('_lam', '_u_poisson', '_z_poisson')})",
            "email_opt_in": f"{u(_S_EMAIL)} < {_at(_EMAIL_OPT_IN, '_p')}",
            "push_opt_in": f"{u(_S_PUSH)} < IF(preferred_channel = 'app', 0.7D, 0.2D)",
            "sms_opt_in": f"{u(_S_SMS)} < 0.25D",
        },
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
    q = f"{_catalogue_quantile('id', products)} + {_z(seed, _S_CATEGORY, 'id')} * 0.12D"
    n_cat = len(_CATEGORIES)
    category = f"least(greatest({_floor_int(f'({q}) * {n_cat}')}, 0), {n_cat - 1})"
    return spark.range(0, products, 1, numPartitions=1).selectExpr(
        f"{catalogue.product_id('id')} AS product_id",
        f"{_at(_CATEGORIES, category)} AS category",
        f"{_money(_price_cents('id', products))} AS price",
    )


# ---------------------------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------------------------


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
        One row per order line or return (:data:`TRANSACTIONS_SCHEMA`): ``customer_id``
        (string), ``order_id`` (string, ``O`` + customer number + 5-digit order number, not in
        time order; shared by all lines of an order and by its return), ``line_no`` (int:
        1..n for the lines of an order, 0 for its return row, so no two rows are identical),
        ``order_ts``
        (timestamp; the same for all lines of an order; a return has its own, 2-29 days later,
        and returns that would fall on or after ``end_date`` are dropped), ``amount``
        (decimal(12,2); negative for returns), ``product_id`` (string), ``quantity`` (int;
        negative for returns), ``channel`` (string: web/app/store, the order's).

    Raises:
        UsageError: invalid sizes, date or seed.
    """
    _check_args(customers, days, end_date, seed)
    _check_int("products", products, 1, "--products")
    parts = partitions or default_partitions(spark, customers, days)
    _check_int("partitions", parts, 1, "--partitions")
    cat = _Catalogue.of(products, seed)
    start_epoch = _epoch_seconds(end_date - dt.timedelta(days=days))
    end_epoch = _epoch_seconds(end_date)

    def u(salt: int, *keys: str) -> str:
        return _u(seed, salt, "_c", "_k", *keys)

    def z(salt: int, *keys: str) -> str:
        return _z(seed, salt, "_c", "_k", *keys)

    base = _customer_base(
        spark, customers=customers, days=days, end_date=end_date, seed=seed, partitions=parts
    )
    orders = base.selectExpr(
        "_c",
        "customer_id",
        "_spend",
        "_returns_only",
        "_a",
        "_b",
        "_anchor",
        "preferred_channel",
        # order 0 is the anchor order, 1.._n_extra are spread over the active days
        """explode(IF(_n_extra + IF(_anchor IS NULL, 0, 1) > 0,
            sequence(IF(_anchor IS NULL, 1, 0), _n_extra), CAST(array() AS ARRAY<INT>))) AS _k""",
    )
    orders = _stage(
        orders,
        {
            "order_id": _padded("O", "_c", _id_width(customers), "_k", 5),
            "_forced_return": "_returns_only AND _anchor IS NOT NULL AND _k = 0",
            "_day": f"""IF(_anchor IS NOT NULL AND _k = 0, _anchor,
                _a + {_floor_int(f"{u(_S_ORDER_DAY)} * greatest(_b - _a, 1)")})""",
            # afternoon-peaked time of day
            "_hour": f"pmod({z(_S_ORDER_TIME)} * 4.5D + 13.5D, 24D)",
            "_u_channel": u(_S_ORDER_CHANNEL),
            "_n_items": f"least(1 + {_geometric(u(_S_ITEMS), 0.375)}, 12)",
            "_u_delay": u(_S_RETURN_DELAY),
        },
    )
    orders = orders.selectExpr(
        "_c",
        "_k",
        "_spend",
        "customer_id",
        "order_id",
        f"{start_epoch}L + CAST(_day AS BIGINT) * 86400 + CAST(floor(_hour * 3600D) AS BIGINT) "
        "AS _sec",
        f"""IF(_u_channel < 0.7D, preferred_channel,
            {_at(CHANNELS, _floor_int("(_u_channel - 0.7D) / 0.3D * 3"))}) AS channel""",
        "_n_items",
        f"_forced_return OR {u(_S_RETURN)} < {_d(_RETURN_RATE)} AS _is_return",
        # A forced return (returns-only customers) lands inside the last 365 days.
        f"""CAST(IF(_forced_return,
            {days - _LOOKBACK_DAYS + 1} - _day + {_floor_int("_u_delay * 20")},
            2 + {_floor_int("_u_delay * 28")}) AS BIGINT) AS _delay_days""",
    )

    # One explode gives the lines 1.._n_items of an order and, for a returned order, line 0:
    # the return row, which recomputes the line it returns (_line) from the same hashes.
    lines = orders.selectExpr(
        "*", "explode(sequence(IF(_is_return, 0, 1), _n_items)) AS _j"
    ).selectExpr(
        "*", f"IF(_j = 0, 1 + {_floor_int(f'{u(_S_RETURN_LINE)} * _n_items')}, _j) AS _line"
    )
    lines = _stage(
        lines,
        {
            "_target": f"_spend * exp({z(_S_LINE_PRICE, '_line')} * {_d(_LINE_PRICE_SIGMA)})",
            "_qty": f"least(1 + {_geometric(u(_S_QTY, '_line'), 0.2)}, 10)",
            "_u_discount": u(_S_DISCOUNT, "_line"),
            "_ts_sec": f"""IF(_j = 0, _sec + _delay_days * 86400
                + CAST(floor({u(_S_RETURN_TIME)} * 14400D) AS BIGINT), _sec)""",
        },
    ).filter(F.col("_ts_sec") < end_epoch)
    lines = _stage(lines, {"_rank": _rank_for_price("_target", cat.size)})
    lines = _stage(
        lines,
        {
            # 12% of lines carry a 10% or 20% discount
            "_cents": f"""floor(({_price_cents("_rank", cat.size)} * _qty
                * CASE WHEN _u_discount < 0.08D THEN 90 WHEN _u_discount < 0.12D THEN 80
                ELSE 100 END + 50) / 100D)""",
            "_returned_qty": f"IF(_qty <= 1, _qty, 1 + {_floor_int(f'{u(_S_RETURN_QTY)} * _qty')})",
        },
    )
    return lines.selectExpr(
        "customer_id",
        "order_id",
        "CAST(_j AS INT) AS line_no",
        "timestamp_seconds(_ts_sec) AS order_ts",
        _money("IF(_j = 0, -floor(_cents * _returned_qty / _qty + 0.5D), _cents)") + " AS amount",
        f"{cat.product_id('_rank')} AS product_id",
        "CAST(IF(_j = 0, -_returned_qty, _qty) AS INT) AS quantity",
        "channel",
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
