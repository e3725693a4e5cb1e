"""Parameters shared by the generator's tables: personas, the period, hash salts, output shapes.

The persona parameters are tuples in the order of :data:`PERSONAS` so that a persona index
column can look them up with one ``element_at``. Every random quantity has its own hash salt
here, in one list, so two quantities can never draw the same numbers by accident.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from pyspark.sql import types as T

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
SHARE = (0.12, 0.16, 0.20, 0.22, 0.15, 0.15)
RATE_PER_YEAR = (24.0, 30.0, 6.0, 0.0, 30.0, 12.0)
UNIT_PRICE = (90.0, 5.0, 45.0, 25.0, 45.0, 20.0)
MEAN_AGE = (45.0, 33.0, 42.0, 38.0, 47.0, 30.0)
EMAIL_OPT_IN = (0.75, 0.6, 0.45, 0.25, 0.5, 0.55)
CHAMPIONS, FREQUENT, OCCASIONAL, ONE_TIME, LAPSED, NEW = range(6)

DROPOUT_DAYS = (100, 220)  # lapsed regulars stop this many days before end_date
NEW_WINDOW_DAYS = 60  # new customers signed up within this many days before end_date
RATE_SIGMA = 0.3
SPEND_SIGMA = 0.3
LINE_PRICE_SIGMA = 0.5
RETURN_RATE = 0.03
RETURNS_ONLY_SHARE_OF_LAPSED = 0.08
RETURNS_ONLY_MIN_DAYS = 420
LOOKBACK_DAYS = 365
FULL_DAYS = 730  # periods shorter than this shrink the dropout and "new" windows
MAX_ORDERS = 99_999  # order numbers are 5 digits per customer

# Hash salts, one per random quantity (normals use salt and salt + 1).
S_PERSONA, S_AGE, S_GENDER, S_COUNTRY, S_CITY = 10, 20, 30, 40, 50
S_SIGNUP_KIND, S_SIGNUP, S_CHANNEL, S_EMAIL, S_PUSH, S_SMS = 60, 70, 80, 90, 100, 110
S_RATE, S_SPEND, S_DROPOUT, S_RET_ONLY, S_ANCHOR, S_POISSON = 120, 130, 140, 150, 160, 170
S_ORDER_DAY, S_ORDER_TIME, S_ORDER_CHANNEL, S_ITEMS, S_RETURN = 200, 210, 220, 230, 240
S_RETURN_LINE, S_RETURN_DELAY, S_RETURN_QTY, S_RETURN_TIME = 250, 260, 270, 280
S_LINE_PRICE, S_QTY, S_DISCOUNT, S_CATEGORY = 300, 310, 320, 330
S_EFFECT, S_EFFECT_DAY, S_INTERESTS = 400, 410, 420

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
    "interests",
)


@dataclass(frozen=True)
class Period:
    """The generated period ``[end_date - days, end_date)``.

    Day numbers in the hidden columns count from the start date (day 0) to ``days``
    (= ``end_date``, exclusive), so most of the arithmetic stays in small integers.

    Attributes:
        days: length of the period in days.
        end_date: first day after the period (UTC).
    """

    days: int
    end_date: dt.date

    @property
    def start_date(self) -> dt.date:
        """Day 0 of the period."""
        return self.end_date - dt.timedelta(days=self.days)

    @property
    def scale(self) -> float:
        """How much the dropout and "new" windows shrink for periods under two years."""
        return min(1.0, self.days / FULL_DAYS)

    @property
    def start_epoch(self) -> int:
        """Seconds since the epoch at the start date, 00:00 UTC."""
        return calendar.timegm(self.start_date.timetuple())

    @property
    def end_epoch(self) -> int:
        """Seconds since the epoch at the end date, 00:00 UTC."""
        return calendar.timegm(self.end_date.timetuple())


def id_width(customers: int) -> int:
    """Digits of a customer number: at least 8, more when there are more customers."""
    return max(8, len(str(customers)))
