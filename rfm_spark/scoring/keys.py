"""What every scoring method shares: the axes, the record of a run, group texts and sort keys.

A group value becomes text (``"=" + value``, ``""`` for null) so that any mix of group columns
sorts and compares the same way in Spark and in Python. A sort key is
``(group texts..., measure from worse to better, customer_id)``: unique, so a row's rank is the
number of keys at or before its own. Ranks are found with a binary search over sorted literal
keys written as nested ``CASE WHEN`` (SQL text parsed once, no UDF).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.schemas import SCORE_COLUMNS
from rfm_spark.sqltext import exact_col, quote, sql_literal

MEASURES = {"r": "recency_days", "f": "frequency", "m": "monetary"}
SCORES = SCORE_COLUMNS
# recency: fewer days is better, so its ntile order is descending
DESCENDING = {"r": True, "f": False, "m": False}
AXES = ("r", "f", "m")
ID = "customer_id"
NULL_GROUP = "(null)"


@dataclass(frozen=True)
class ScoringInfo:
    """What a scoring run used: recorded with the output.

    Attributes:
        method: ``ntile``, ``quantile`` or ``thresholds``.
        bins: number of scores.
        partition_by: group columns.
        cut_points: per axis, per group key (``""`` without groups), the cut points used
            (quantile, thresholds); empty for ntile, whose cuts are customers' sort keys.
        collapsed: per axis and group, the scores no customer can get because ties made cut
            points coincide (quantile only).
        ranges: ntile only: how many key ranges the exact ranking was split into per axis.
    """

    method: str
    bins: int
    partition_by: tuple[str, ...] = ()
    cut_points: Mapping[str, Mapping[str, list[float]]] = field(default_factory=dict)
    collapsed: Mapping[str, Mapping[str, list[int]]] = field(default_factory=dict)
    ranges: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "bins": self.bins,
            "partition_by": list(self.partition_by),
            "cut_points": {a: dict(v) for a, v in self.cut_points.items()},
            "collapsed": {a: dict(v) for a, v in self.collapsed.items()},
            "ranges": dict(self.ranges),
        }


def group_columns(groups: Sequence[str]) -> list[str]:
    """The working columns ``_g0, _g1, ...`` that hold the group values as text."""
    return [f"_g{i}" for i in range(len(groups))]


def with_group_texts(df: DataFrame, groups: Sequence[str]) -> DataFrame:
    """Add ``_g0.._gk``: ``"=" + value``, and ``""`` for a missing value, so that nulls form
    their own group (apart from the text ``"(null)"``)."""
    out = df
    for name, g in zip(group_columns(groups), groups, strict=True):
        out = out.withColumn(
            name, F.coalesce(F.concat(F.lit("="), exact_col(g).cast("string")), F.lit(""))
        )
    return out


def group_label(row: Any, groups: Sequence[str]) -> str:
    """The group of a collected row as recorded in :class:`ScoringInfo` (``"(null)"`` for a
    null), values joined by ``|``."""
    texts = (row[c] for c in group_columns(groups))
    return "|".join(t[1:] if t else NULL_GROUP for t in texts)


def key_columns(axis: str, groups: Sequence[str]) -> list[str]:
    """The sort key of ``axis``: group texts, the measure (ascending = worse to better), id."""
    return [*group_columns(groups), f"_key_{axis}", ID]


def with_sort_keys(df: DataFrame, groups: Sequence[str]) -> DataFrame:
    """Add the group texts and ``_key_r``, ``_key_f``, ``_key_m`` (ascending = worse to
    better)."""
    out = with_group_texts(df, groups)
    for axis in AXES:
        measure = F.col(MEASURES[axis])
        out = out.withColumn(f"_key_{axis}", -measure if DESCENDING[axis] else measure)
    return out


def _at_or_after_sql(cols: Sequence[str], types: Sequence[T.DataType], bound: Sequence[Any]) -> str:
    """SQL for the lexicographic ``(cols) >= bound``."""
    names = [quote(c) for c in cols]
    lits = [sql_literal(v, t) for v, t in zip(bound, types, strict=True)]
    expr = f"{names[-1]} >= {lits[-1]}"
    for name, lit in zip(reversed(names[:-1]), reversed(lits[:-1]), strict=True):
        expr = f"({name} > {lit} OR ({name} = {lit} AND {expr}))"
    return expr


def count_at_or_before_sql(
    cols: Sequence[str], types: Sequence[T.DataType], keys: Sequence[Sequence[Any]]
) -> str:
    """SQL for how many of the ascending ``keys`` are <= the row's ``(cols)``: a binary search
    in nested ``CASE WHEN``, depth log2(len(keys))."""

    def search(lo: int, hi: int) -> str:  # answer in [lo, hi]
        if lo == hi:
            return str(lo)
        mid = (lo + hi) // 2  # is the row's key >= keys[mid]?
        return (
            f"CASE WHEN {_at_or_after_sql(cols, types, keys[mid])} "
            f"THEN {search(mid + 1, hi)} ELSE {search(lo, mid)} END"
        )

    return f"CAST({search(0, len(keys))} AS INT)"


def count_at_or_before(
    cols: Sequence[str], types: Sequence[T.DataType], keys: Sequence[Sequence[Any]]
) -> Column:
    """:func:`count_at_or_before_sql` as a column. Built as SQL text and parsed once: thousands
    of keys cost milliseconds, where building the same tree call by call through Py4J took
    seconds."""
    return F.expr(count_at_or_before_sql(cols, types, keys))
