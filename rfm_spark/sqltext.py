"""Identifiers and literals in Spark SQL text: the one place user strings are made safe for it."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T


def quote(name: str) -> str:
    """``name`` as a quoted Spark identifier: in backticks, backticks inside doubled.

    ``F.col("a.b")`` reads a field ``b`` of a struct ``a`` and ``F.col("a`b")`` fails to parse;
    ``F.col(quote(name))`` always means the top-level column called exactly ``name``. Also
    quotes a table path in ``delta.`<path>```.
    """
    return "`" + name.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """``value`` as a Spark SQL string literal: single quotes, backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def exact_col(name: str) -> Column:
    """The top-level column called exactly ``name`` (dots, backticks, quotes and all)."""
    return F.col(quote(name))


def sql_literal(value: Any, dtype: T.DataType) -> str:
    """``value`` as a SQL literal of type ``dtype``. Text is written as hex bytes, so no value
    can change the meaning of the expression it is put in.

    Raises:
        TypeError: for a type that sort keys cannot have.
    """
    if value is None:
        return f"CAST(NULL AS {dtype.simpleString()})"
    if isinstance(dtype, T.StringType):
        return f"CAST(X'{str(value).encode().hex()}' AS STRING)"
    if isinstance(dtype, T.BooleanType):
        return "TRUE" if value else "FALSE"
    if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return f"CAST({int(value)} AS {dtype.simpleString()})"
    if isinstance(dtype, T.DecimalType):
        return f"CAST({format(Decimal(value), 'f')}BD AS {dtype.simpleString()})"
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        text = "NaN" if math.isnan(value) else repr(float(value)).replace("inf", "Infinity")
        return f"CAST('{text}' AS {dtype.simpleString()})"
    if isinstance(dtype, T.DateType):
        return f"DATE'{value.isoformat()}'"
    raise TypeError(f"cannot rank by a column of type {dtype.simpleString()}")
