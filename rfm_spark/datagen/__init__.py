"""Synthetic demo and benchmark data: transactions, customers and products.

Everything is built by Spark itself from ``spark.range`` and built-in functions: no Python UDFs,
no driver-side loops over rows, nothing collected. Randomness is not ``F.rand`` but a hash of
``(seed, purpose, customer, order, line)`` turned into a uniform number, so every value is a pure
function of its keys: the same seed, sizes and end date give the same rows whatever the number
of partitions or executors, and no shuffle is ever needed (transactions are exploded from the
customer rows, the product catalogue is a closed-form function of the product index).

Modules: :mod:`~rfm_spark.datagen.distributions` (random draws as Column functions),
:mod:`~rfm_spark.datagen.params` (personas, salts, output shapes),
:mod:`~rfm_spark.datagen.customers`, :mod:`~rfm_spark.datagen.products` and
:mod:`~rfm_spark.datagen.transactions` (the lazy tables), :mod:`~rfm_spark.datagen.arguments`
and :mod:`~rfm_spark.datagen.formats` (argument checks, ids and money). Writing them as Parquet
is I/O: :func:`rfm_spark.io.demo_data.generate`.

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

from rfm_spark.datagen.customers import customers_df
from rfm_spark.datagen.params import (
    CHANNELS,
    CUSTOMERS_COLUMNS,
    DEFAULT_END_DATE,
    PERSONAS,
    ROWS_PER_CUSTOMER_YEAR,
    TRANSACTIONS_SCHEMA,
)
from rfm_spark.datagen.products import products_df
from rfm_spark.datagen.transactions import (
    default_partitions,
    estimated_transaction_rows,
    transactions_df,
)

__all__ = [
    "CHANNELS",
    "CUSTOMERS_COLUMNS",
    "DEFAULT_END_DATE",
    "PERSONAS",
    "ROWS_PER_CUSTOMER_YEAR",
    "TRANSACTIONS_SCHEMA",
    "customers_df",
    "default_partitions",
    "estimated_transaction_rows",
    "products_df",
    "transactions_df",
]
