"""Output formats shared by the tables: zero-padded ids and money from integer cents."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def padded(prefix: str, *parts: tuple[Column, int]) -> Column:
    """``prefix`` + zero-padded numbers: ``padded("C", (F.col("_c"), 8))`` -> ``C00000042``.

    Each part is a number column and its width (lpad is much faster than format_string).
    """
    pads = [F.lpad(number.cast("string"), width, "0") for number, width in parts]
    return F.concat(F.lit(prefix), *pads)


def money(cents: Column) -> Column:
    """Whole cents (bigint) -> decimal(12,2).

    Money is computed in integer cents because decimal arithmetic goes through
    java.math.BigDecimal and was a third of the generation time.
    """
    return (cents / 100.0).cast("decimal(12,2)")
