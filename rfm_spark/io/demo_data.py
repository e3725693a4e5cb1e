"""Writing the demo data: the generator's lazy tables (:mod:`rfm_spark.datagen`) as Parquet.

The tables themselves are side-effect free DataFrames, so a benchmark or a test can also use
them directly without writing anything. A manifest (``_generated.json``) next to them records
the arguments they were written with: asking again for the same data writes nothing, so the
files an incremental run has read are not replaced by copies with new names.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

from pyspark.sql import SparkSession

from rfm_spark import __version__
from rfm_spark.datagen.arguments import check_args, check_int
from rfm_spark.datagen.customers import customers_df
from rfm_spark.datagen.effect import PlantedEffect
from rfm_spark.datagen.params import CUSTOMERS_COLUMNS, DEFAULT_END_DATE
from rfm_spark.datagen.products import products_df
from rfm_spark.datagen.transactions import transactions_df
from rfm_spark.io import files

MANIFEST = "_generated.json"


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
        written: False when the same data was already there and nothing was written.
    """

    out_dir: str
    customers: int
    transactions: int
    products: int
    start_date: dt.date
    end_date: dt.date
    seed: int
    written: bool = True


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
    force: bool = False,
    effect: PlantedEffect | None = None,
) -> GenerateSummary:
    """Write ``transactions``, ``customers`` and ``products`` as Parquet under ``out_dir``.

    Each table is written with Spark's writer in overwrite mode; nothing is collected on the
    driver. The transactions count comes from the written Parquet (a metadata-only count).
    When ``out_dir`` already holds the data of the same arguments (its manifest says so),
    nothing is written unless ``force``.

    Args:
        spark: the session.
        out_dir: output directory (local path or any Hadoop URI).
        customers: number of customers (>= 1).
        days: length of the period (>= 1); transactions fall in ``[end_date - days, end_date)``.
        end_date: first day after the period (UTC).
        seed: random seed; the same arguments give the same content.
        products: size of the product catalogue (>= 1).
        partitions: partitions (files) of the transactions; default sized for ~2M rows each.
        force: write even when the same data is already there.
        effect: a campaign effect to plant in the transactions (see
            :mod:`rfm_spark.datagen.effect`), or None.

    Returns:
        A :class:`GenerateSummary` with the row counts and the period.

    Raises:
        UsageError: invalid arguments.
    """
    check_args(customers, days, end_date, seed)
    check_int("products", products, 1, "--products")
    if partitions is not None:
        check_int("partitions", partitions, 1, "--partitions")
    root = out_dir.rstrip("/")
    wanted = {
        "customers": customers,
        "days": days,
        "end_date": end_date.isoformat(),
        "seed": seed,
        "products": products,
        "partitions": partitions,
        "effect": {k: str(v) for k, v in asdict(effect).items()} if effect else None,
        "customers_columns": list(CUSTOMERS_COLUMNS),
        "rfm_spark_version": __version__,
    }
    there = None if force else _already_there(spark, root, wanted)
    if there is not None:
        return there
    files.remove(
        spark, f"{root}/{MANIFEST}"
    )  # gone before a table changes: a half-written set has none
    transactions_df(
        spark,
        customers=customers,
        days=days,
        end_date=end_date,
        seed=seed,
        products=products,
        partitions=partitions,
        effect=effect,
    ).write.mode("overwrite").parquet(f"{root}/transactions")
    customers_df(spark, customers=customers, days=days, end_date=end_date, seed=seed).write.mode(
        "overwrite"
    ).parquet(f"{root}/customers")
    products_df(spark, products=products, seed=seed).write.mode("overwrite").parquet(
        f"{root}/products"
    )
    summary = GenerateSummary(
        out_dir=out_dir,
        customers=customers,
        transactions=spark.read.parquet(f"{root}/transactions").count(),
        products=products,
        start_date=end_date - dt.timedelta(days=days),
        end_date=end_date,
        seed=seed,
    )
    record = {k: str(v) if isinstance(v, dt.date) else v for k, v in asdict(summary).items()}
    text = json.dumps({"arguments": wanted, "written": record}, indent=2) + "\n"
    files.write_text(spark, f"{root}/{MANIFEST}", text)
    return summary


def _already_there(
    spark: SparkSession, root: str, wanted: dict[str, object]
) -> GenerateSummary | None:
    """The summary of the data under ``root`` when its manifest records ``wanted`` and its
    tables are all there; None otherwise (an unreadable manifest included)."""
    text = files.read_text(spark, f"{root}/{MANIFEST}")
    try:
        earlier = json.loads(text or "")
    except ValueError:
        return None
    tables = all(
        files.exists(spark, f"{root}/{t}/_SUCCESS")
        for t in ("transactions", "customers", "products")
    )
    if earlier.get("arguments") != wanted or not tables:
        return None
    return _summary(earlier["written"], written=False)


def _summary(record: dict[str, object], *, written: bool) -> GenerateSummary:
    """A summary from its manifest record."""
    values = dict(record, written=written)
    for key in ("start_date", "end_date"):
        values[key] = dt.date.fromisoformat(str(values[key]))
    return GenerateSummary(**values)  # type: ignore[arg-type]
