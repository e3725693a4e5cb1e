"""The product catalogue: lognormal prices, price-correlated categories, permuted ids.

Prices are a closed-form function of the product's price rank, and the rank a closed-form
inverse of a price, so order lines can draw a target price and find the product nearest to it
without a join (and so without a shuffle).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.datagen.arguments import check_int
from rfm_spark.datagen.distributions import Draws, element, floor_int
from rfm_spark.datagen.formats import money, padded
from rfm_spark.datagen.params import S_CATEGORY

# Price of the product at rank i of P is the lognormal quantile at (i + 0.5) / P (logistic
# approximation of the normal quantile, so it can be inverted in closed form).
_PRICE_MEDIAN = 25.0
_PRICE_SIGMA = 1.1
_LOGISTIC_K = 1.702
_CATEGORIES = ("grocery", "beauty", "books", "toys", "home", "fashion", "sports", "electronics")


@dataclass(frozen=True)
class Catalogue:
    """Prices by price rank and product ids: an affine permutation of the ranks.

    The permutation keeps ids from sorting by price.

    Attributes:
        size: number of products.
        mult: multiplier of the permutation (coprime with ``size``).
        add: offset of the permutation.
        width: digits of a product number.
    """

    size: int
    mult: int
    add: int
    width: int

    @classmethod
    def of(cls, size: int, seed: int) -> Catalogue:
        """The catalogue of ``size`` products for ``seed``."""
        rng = random.Random(f"rfm-spark-catalogue-{seed}-{size}")
        mult = rng.randrange(1, max(size, 2))
        while math.gcd(mult, size) != 1:
            mult += 1
        return cls(size, mult % size or 1, rng.randrange(size), max(5, len(str(size))))

    def product_id(self, rank: Column) -> Column:
        """Id (``P`` + number) of the product at price rank ``rank``."""
        number = (rank * self.mult + self.add) % self.size + 1
        return padded("P", (number, self.width))

    def quantile(self, rank: Column) -> Column:
        """Position in (0, 1) of the price rank ``rank`` (0-based, ascending)."""
        return (rank.cast("double") + 0.5) / float(self.size)

    def price_cents(self, rank: Column) -> Column:
        """Price in cents (bigint) of the product at price rank ``rank``."""
        p = self.quantile(rank)
        x = F.exp(math.log(_PRICE_MEDIAN) + F.log(p / (1.0 - p)) * (_PRICE_SIGMA / _LOGISTIC_K))
        # Shop-like prices: x.99 from 5 up, whole cents below, at least 0.49.
        cents = F.when(x < 5.0, F.round(x * 100.0)).otherwise(F.ceil(x) * 100 - 1)
        return F.greatest(cents.cast("bigint"), F.lit(49).cast("bigint"))

    def rank_for_price(self, target: Column) -> Column:
        """Price rank (0-based) whose price is closest to ``target``: inverse of the price."""
        z = (F.log(target) - math.log(_PRICE_MEDIAN)) * (_LOGISTIC_K / _PRICE_SIGMA)
        rank = F.floor(float(self.size) / (F.exp(-z) + 1.0)).cast("bigint")
        lowest, highest = F.lit(0).cast("bigint"), F.lit(self.size - 1).cast("bigint")
        return F.least(F.greatest(rank, lowest), highest)


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
    check_int("products", products, 1, "--products")
    catalogue = Catalogue.of(products, seed)
    rank = F.col("id")
    q = catalogue.quantile(rank) + Draws(seed, ("id",)).normal(S_CATEGORY) * 0.12
    n_cat = len(_CATEGORIES)
    category = F.least(F.greatest(floor_int(q * n_cat), F.lit(0)), F.lit(n_cat - 1))
    return spark.range(0, products, 1, numPartitions=1).select(
        catalogue.product_id(rank).alias("product_id"),
        element(_CATEGORIES, category).alias("category"),
        money(catalogue.price_cents(rank)).alias("price"),
    )
