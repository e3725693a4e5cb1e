"""What a run's attribute rules read besides the snapshot: the customers table and the
behaviour in the transactions (:mod:`rfm_spark.behaviour`), read only when a rule needs them.

The behaviour of a snapshot comes from the valid input rows of its window, read again for this
purpose (an incremental run keeps only daily totals, which hold no channel or product).
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.attributes import AttributeRules
from rfm_spark.behaviour import NEEDS_PRODUCTS, behaviour
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError
from rfm_spark.io.inputs import read_customer_attributes, read_products, read_transactions
from rfm_spark.pipeline.output import AttributeInput
from rfm_spark.progress import Progress
from rfm_spark.validation import ROW


def attribute_input(
    spark: SparkSession,
    config: Config,
    rules: AttributeRules | None,
    snapshot_dates: list[dt.date],
    progress: Progress,
) -> AttributeInput | None:
    """The rules and their sources for ``snapshot_dates`` (None: no rules).

    Without a customers table the dimensions that need one stay out of every row's map.

    Raises:
        ConfigError: A behaviour rule whose input column or products table is missing.
    """
    if rules is None:
        return None
    columns = rules.customer_columns()
    customers = None
    if columns and not config.input.customers_path:
        progress.info(
            f"no customers table: attribute dimensions on {', '.join(columns)} stay empty "
            "(set input.customers_path or --customers-input)"
        )
    elif columns:
        needed_for = f"attribute rules {rules.name!r}"
        customers = read_customer_attributes(spark, config.input, columns, needed_for=needed_for)
    wanted = rules.behaviour_columns()
    found = _behaviour(spark, config, wanted, snapshot_dates) if wanted else None
    return AttributeInput(rules, customers, found)


def _behaviour(
    spark: SparkSession, config: Config, wanted: list[str], snapshot_dates: list[dt.date]
) -> DataFrame:
    """``customer_id``, ``snapshot_date`` and the ``wanted`` behaviour of every snapshot."""
    products = read_products(spark, config.input)
    if products is None and set(wanted) & set(NEEDS_PRODUCTS):
        raise ConfigError(
            f"attribute rules read {sorted(set(wanted) & set(NEEDS_PRODUCTS))}: set "
            "input.products_path to a products table with product_id and category"
        )
    now = dt.datetime.now(dt.timezone.utc)
    rows = read_transactions(spark, config.input, now=now).filter(F.col("reject_reason").isNull())
    fields = rows.schema[ROW].dataType.fieldNames()  # type: ignore[attr-defined]
    needs = {
        "order_channel": "channel",
        "top_category": "product_id",
        "category_count": "product_id",
    }
    missing = sorted({needs[c] for c in wanted if c in needs} - set(fields))
    if missing:
        raise ConfigError(
            f"attribute rules read {wanted}, which need the transactions' column(s) {missing}; "
            f"the input has {', '.join(fields)}"
        )
    if config.validation.duplicates == "quarantine":
        rows = rows.dropDuplicates([ROW])  # an exact copy of a row is not behaviour
    lookback = dt.timedelta(days=config.features.lookback_days)
    per_snapshot = [
        behaviour(
            rows.filter(
                (F.col("order_date") >= F.lit(d - lookback)) & (F.col("order_date") < F.lit(d))
            ),
            wanted,
            products,
        ).withColumn("snapshot_date", F.lit(d))
        for d in snapshot_dates
    ]
    return reduce(DataFrame.unionByName, per_snapshot)
