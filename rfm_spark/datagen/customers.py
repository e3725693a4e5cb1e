"""The customers table and the hidden per-customer columns the orders are drawn from.

Customers belong to one of the planted personas (see the package docstring). Everything is
built from ``spark.range`` in a few stages of ``withColumns``; each stage refers to the columns
of the previous one by name, which keeps every expression small. Besides the public columns a
customer row carries ``_``-columns: the persona index ``_p``, the signup day ``_signup``, the
active days ``[_a, _b)``, the day ``_anchor`` of an "anchor" order (one-time buyers' order, new
customers' first, the returned last order of "returns only" customers), the spend level
``_spend`` and the number of extra orders ``_n_extra``. Day numbers count from the start date.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.datagen import params as P
from rfm_spark.datagen.arguments import check_args, check_int
from rfm_spark.datagen.distributions import (
    Draws,
    element,
    first_match,
    floor_int,
    pick,
    poisson,
)
from rfm_spark.datagen.formats import padded

_CUSTOMERS_PER_PARTITION = 1_000_000

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
_PLACES = [place for _, _, places in _COUNTRIES for place in places]
# Interest tags (psychographic): (tag, chance at age 18, chance at age 90), linear in between;
# each tag is drawn on its own, so a customer has none, one or several.
_INTERESTS = (
    ("outdoor", 0.25, 0.20),
    ("tech", 0.40, 0.08),
    ("fashion", 0.35, 0.10),
    ("home_garden", 0.08, 0.45),
    ("fitness", 0.35, 0.10),
    ("travel", 0.20, 0.30),
    ("food", 0.25, 0.25),
    ("books", 0.12, 0.35),
)


def _new_window(period: P.Period) -> int:
    """Days before the end in which new customers signed up (shrinks for short periods)."""
    return max(1, round(P.NEW_WINDOW_DAYS * period.scale))


def _persona_draws(df: DataFrame, draws: Draws, period: P.Period) -> DataFrame:
    """Persona, country and the uniforms that later stages use more than once."""
    # A single order in the last weeks is a new customer's, so one-time buyers bought before.
    one_time_span = max(1, period.days - _new_window(period))
    return df.withColumns(
        {
            "_p": pick(draws.uniform(P.S_PERSONA), P.SHARE),
            "_country_idx": pick(draws.uniform(P.S_COUNTRY), [s for _, s, _ in _COUNTRIES]),
            "_u_signup": draws.uniform(P.S_SIGNUP),
            "_u_dropout": draws.uniform(P.S_DROPOUT),
            "_anchor_one_time": floor_int(draws.uniform(P.S_ANCHOR) * one_time_span),
        }
    )


def _city_index(country_idx: Column, u: Column) -> Column:
    """Index into the flattened list of places: a Zipf-weighted city of the customer's country."""
    sizes = [len(places) for _, _, places in _COUNTRIES]
    offsets = itertools.accumulate([0, *sizes[:-1]])
    return first_match(
        [
            (country_idx == i, pick(u, [1.0 / (r + 1) for r in range(size)]) + offset)
            for i, (size, offset) in enumerate(zip(sizes, offsets, strict=True))
        ]
    )


def _signup_day(p: Column, draws: Draws, period: P.Period) -> Column:
    """Signup day of a customer, by persona.

    Established personas signed up up to 3 years before the start, 15% during the first half
    of the period (lapsed regulars always before it); one-time buyers at most 30 days before
    their order, new customers in the last 60 days (so their first order can be on it).
    """
    u, days, new_window = F.col("_u_signup"), period.days, _new_window(period)
    return (
        F.when(p == P.ONE_TIME, F.col("_anchor_one_time") - floor_int(u * 30))
        .when(p == P.NEW, (days - new_window) + floor_int(u * new_window))
        .when(
            (p != P.LAPSED) & (draws.uniform(P.S_SIGNUP_KIND) < 0.15),
            floor_int(u * float(days / 2)),
        )
        .otherwise(-floor_int(u * 1095) - 1)
    )


def _profile(df: DataFrame, draws: Draws, period: P.Period) -> DataFrame:
    """Age, city, order rate, spend level, signup day and the "returns only" flag."""
    p = F.col("_p")
    age = element(P.MEAN_AGE, p) + draws.normal(P.S_AGE) * 13.0
    # Some lapsed regulars ("returns only") stop more than a year before the end and return
    # their last order inside the last year.
    returns_only = (
        (p == P.LAPSED)
        & (draws.uniform(P.S_RET_ONLY) < P.RETURNS_ONLY_SHARE_OF_LAPSED)
        & F.lit(period.days >= P.RETURNS_ONLY_MIN_DAYS)
    )
    rate_factor = draws.normal(P.S_RATE) * P.RATE_SIGMA - P.RATE_SIGMA**2 / 2
    return df.withColumns(
        {
            "age": F.least(F.greatest(F.round(age), F.lit(18)), F.lit(90)).cast("int"),
            "_city_idx": _city_index(F.col("_country_idx"), draws.uniform(P.S_CITY)),
            "_rate": element(P.RATE_PER_YEAR, p) * F.exp(rate_factor),
            "_spend": element(P.UNIT_PRICE, p) * F.exp(draws.normal(P.S_SPEND) * P.SPEND_SIGMA),
            "_returns_only": returns_only,
            "_signup": _signup_day(p, draws, period),
        }
    )


def _activity(df: DataFrame, period: P.Period) -> DataFrame:
    """Active days ``[_a, _b)``: from the signup (or the start) to the end or a dropout.

    Lapsed regulars drop out 100-220 days before the end (scaled for short periods); "returns
    only" customers 3-20 days more than a year before it.
    """
    days, u = period.days, F.col("_u_dropout")
    d0, d1 = P.DROPOUT_DAYS
    dropout = days - F.round((float(d0) + u * float(d1 - d0)) * period.scale).cast("int")
    return df.withColumns(
        {
            "_a": F.greatest(F.col("_signup"), F.lit(0)),
            "_b": F.when(F.col("_returns_only"), (days - P.LOOKBACK_DAYS) - 3 - floor_int(u * 18))
            .when(F.col("_p") == P.LAPSED, F.greatest(dropout, F.lit(1)))
            .otherwise(days),
        }
    )


def _preferred_channel(u: Column) -> Column:
    """Younger customers prefer the app, older ones the store."""
    age = F.col("age")
    p_app = F.least(F.greatest(0.55 - (age - 18) * 0.008, F.lit(0.05)), F.lit(0.6))
    p_store = F.least(F.greatest(0.05 + (age - 18) * 0.006, F.lit(0.05)), F.lit(0.45))
    return F.when(u < p_app, "app").when(u < p_app + p_store, "store").otherwise("web")


def _interests(draws: Draws) -> Column:
    """The customer's interest tags in :data:`_INTERESTS` order (possibly empty)."""
    t = (F.col("age") - 18) / 72.0
    tags = [
        F.when(draws.uniform(P.S_INTERESTS + i) < young + (old - young) * t, F.lit(tag))
        for i, (tag, young, old) in enumerate(_INTERESTS)
    ]
    return F.filter(F.array(*tags), lambda tag: tag.isNotNull()).cast("array<string>")


def _described(df: DataFrame, draws: Draws, customers: int, period: P.Period) -> DataFrame:
    """The public descriptive columns, the anchor day and the inputs of the order count."""
    p = F.col("_p")
    city_idx = F.col("_city_idx")
    gender = pick(draws.uniform(P.S_GENDER), [w for _, w in _GENDERS])
    return df.withColumns(
        {
            "_anchor": F.when(p == P.ONE_TIME, F.col("_anchor_one_time"))
            .when(p == P.NEW, F.col("_signup"))
            .when(F.col("_returns_only"), F.col("_b")),
            "_lam": F.col("_rate") * F.greatest(F.col("_b") - F.col("_a"), F.lit(0)) / 365.0,
            "_u_poisson": draws.uniform(P.S_POISSON),
            "_z_poisson": draws.normal(P.S_POISSON + 2),
            "customer_id": padded("C", (F.col("_c"), P.id_width(customers))),
            "persona": element(P.PERSONAS, p),
            "gender": element([g for g, _ in _GENDERS], gender),
            "country": element([code for code, _, _ in _COUNTRIES], F.col("_country_idx")),
            "region": element([region for region, _ in _PLACES], city_idx),
            "city": element([city for _, city in _PLACES], city_idx),
            "signup_date": F.date_add(F.lit(period.start_date), F.col("_signup")),
            "preferred_channel": _preferred_channel(draws.uniform(P.S_CHANNEL)),
            "interests": _interests(draws),
        }
    )


def _order_count_and_consent(df: DataFrame, draws: Draws) -> DataFrame:
    """Extra orders (Poisson over the active days; none for one-time buyers) and opt-ins."""
    p = F.col("_p")
    # the last order number is kept for a planted order (rfm_spark.datagen.effect)
    n_extra = poisson(F.col("_lam"), F.col("_u_poisson"), F.col("_z_poisson"), P.MAX_ORDERS - 1)
    push_rate = F.when(F.col("preferred_channel") == "app", 0.7).otherwise(0.2)
    return df.withColumns(
        {
            "_n_extra": F.when(p == P.ONE_TIME, 0).otherwise(n_extra),
            "email_opt_in": draws.uniform(P.S_EMAIL) < element(P.EMAIL_OPT_IN, p),
            "push_opt_in": draws.uniform(P.S_PUSH) < push_rate,
            "sms_opt_in": draws.uniform(P.S_SMS) < 0.25,
        }
    )


def customer_base(
    spark: SparkSession, *, customers: int, period: P.Period, seed: int, partitions: int
) -> DataFrame:
    """Customers with the public columns plus the hidden ``_``-columns orders are drawn from."""
    draws = Draws(seed, ("_c",))
    df = spark.range(1, customers + 1, 1, numPartitions=partitions).select(F.col("id").alias("_c"))
    df = _profile(_persona_draws(df, draws, period), draws, period)
    df = _described(_activity(df, period), draws, customers, period)
    return _order_count_and_consent(df, draws)


def customers_df(
    spark: SparkSession,
    *,
    customers: int = 20000,
    days: int = 730,
    end_date: dt.date = P.DEFAULT_END_DATE,
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
        ``email_opt_in``, ``push_opt_in``, ``sms_opt_in`` (booleans), ``interests`` (array of
        strings: interest tags, more "tech" and "fitness" among the young, "home_garden" and
        "books" among the old).

    Raises:
        UsageError: invalid sizes, date or seed.
    """
    check_args(customers, days, end_date, seed)
    parts = partitions or max(1, math.ceil(customers / _CUSTOMERS_PER_PARTITION))
    check_int("partitions", parts, 1, "--partitions")
    base = customer_base(
        spark, customers=customers, period=P.Period(days, end_date), seed=seed, partitions=parts
    )
    return base.select(*P.CUSTOMERS_COLUMNS)
