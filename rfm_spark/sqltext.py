"""Identifiers and literals in Spark SQL text: the one place user strings are made safe for it."""

from __future__ import annotations


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
