"""R, F and M scores 1..n without ever moving all customers to one partition.

Three methods (design.md section 3):

``ntile``
    Exactly Spark's ``ntile(n)`` over ``ORDER BY recency_days DESC, customer_id`` (R),
    ``frequency, customer_id`` (F) and ``monetary, customer_id`` (M), but distributed: the sort
    key space is cut into ranges at boundaries taken from a small sample, each row's range is
    found by a binary search written as nested ``CASE WHEN`` (no UDF), the rows of each range
    are counted, and a row's global position is the count of all earlier ranges plus its
    ``row_number`` inside its range (a window partitioned by range). The bucket follows from the
    position with ntile's own arithmetic. The boundaries only decide how work is spread: the
    result is the same for any sample, so it is deterministic run to run.
``quantile``
    Tie-aware: cut points from ``percentile_approx`` (one aggregation for all three measures);
    a value's score counts the cut points below it, so equal values always share a score. When
    ties make cut points coincide, some scores stay empty; that is reported.
``thresholds``
    Fixed business cut points from the config.

Every method can score within groups (``partition_by``): positions, quantiles and counts are
then taken per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.config import ScoringSettings, Thresholds
from rfm_spark.errors import ConfigError, MissingColumnsError
from rfm_spark.validation import quote as quote_identifier

MEASURES = {"r": "recency_days", "f": "frequency", "m": "monetary"}
SCORES = {"r": "r_score", "f": "f_score", "m": "m_score"}
# recency: fewer days is better, so its ntile order is descending
DESCENDING = {"r": True, "f": False, "m": False}
ID = "customer_id"
SAMPLE_PER_RANGE = 40
ROWS_PER_RANGE = 2_000_000
MAX_RANGES = 20_000


@dataclass(frozen=True)
class ScoringInfo:
    """What a scoring run used: recorded with the output.

    Attributes:
        method: ``ntile``, ``quantile`` or ``thresholds``.
        bins: number of scores.
        partition_by: group columns.
        cut_points: per axis, per group key (``""`` without groups), the cut points used
            (quantile, thresholds); empty for ntile, whose boundaries come from score ranges.
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


# --------------------------------------------------------------------------------------------
# ntile arithmetic


def ntile_bucket(position: Column, total: Column, n: int) -> Column:
    """The bucket ``ntile(n)`` gives the row at 1-based ``position`` of ``total`` rows.

    The first ``total % n`` buckets hold one row more than the others, as in Spark.
    """
    size = F.floor(total / F.lit(n))
    padded = total % F.lit(n)
    big_rows = padded * (size + 1)
    return (
        F.when(position <= big_rows, F.floor((position - 1) / (size + 1)) + 1)
        .otherwise(F.floor((position - 1 - padded) / F.greatest(size, F.lit(1))) + 1)
        .cast("int")
    )


def exact_col(name: str) -> Column:
    """The top-level column called exactly ``name`` (dots, backticks, quotes and all)."""
    return F.col(quote_identifier(name))


NULL_GROUP = "(null)"


def _group_col(name: str) -> Column:
    """The group value as text, for joins and sort keys: ``"=" + value``, and ``""`` for a
    missing value, so that nulls form their own group (apart from the text ``"(null)"``)."""
    return F.coalesce(F.concat(F.lit("="), exact_col(name).cast("string")), F.lit(""))


def _group_label(encoded: str) -> str:
    """The group value as recorded in :class:`ScoringInfo` (``"(null)"`` for a null)."""
    return encoded[1:] if encoded else NULL_GROUP


def _key_columns(axis: str, groups: Sequence[str]) -> list[str]:
    return [*(f"_g{i}" for i in range(len(groups))), "_key", ID]


def _with_sort_key(df: DataFrame, axis: str, groups: Sequence[str]) -> DataFrame:
    """Add ``_g0.._gk`` (groups as text, see :func:`_group_col`) and ``_key`` (ascending =
    worse to better)."""
    measure = F.col(MEASURES[axis])
    key = -measure if DESCENDING[axis] else measure
    out = df
    for i, g in enumerate(groups):
        out = out.withColumn(f"_g{i}", _group_col(g))
    return out.withColumn("_key", key)


def _at_or_after(cols: Sequence[str], types: Sequence[T.DataType], bound: Sequence[Any]) -> Column:
    """Lexicographic ``(cols) >= bound`` with each literal typed like its column."""
    lits = [F.lit(v).cast(t) for v, t in zip(bound, types, strict=True)]
    expr: Column = F.col(cols[-1]) >= lits[-1]
    for c, lit in zip(reversed(cols[:-1]), reversed(lits[:-1]), strict=True):
        expr = (F.col(c) > lit) | ((F.col(c) == lit) & expr)
    return expr


def _range_index(
    cols: Sequence[str], types: Sequence[T.DataType], bounds: Sequence[Sequence[Any]]
) -> Column:
    """Index of the range a row falls in: the number of boundaries <= its key (binary search)."""

    def search(lo: int, hi: int) -> Column:  # answer in [lo, hi]
        if lo == hi:
            return F.lit(lo)
        mid = (lo + hi) // 2  # boundary index mid -> is key >= bounds[mid]?
        return F.when(_at_or_after(cols, types, bounds[mid]), search(mid + 1, hi)).otherwise(
            search(lo, mid)
        )

    return search(0, len(bounds)).cast("int")


def _boundaries(
    keyed: DataFrame, cols: Sequence[str], total: int, ranges: int, seed: int
) -> list[tuple[Any, ...]]:
    if ranges <= 1 or total <= 1:
        return []
    fraction = min(1.0, SAMPLE_PER_RANGE * ranges / total)
    sample = (
        keyed.select(*cols).sample(withReplacement=False, fraction=fraction, seed=seed).collect()
    )
    # keys are unique (customer_id is part of them); Python orders str, int and Decimal as Spark does
    keys = sorted(tuple(r) for r in sample)
    if not keys:
        return []
    step = len(keys) / ranges
    picked = [keys[min(len(keys) - 1, int(i * step))] for i in range(1, ranges)]
    return sorted(set(picked))


def auto_ranges(total: int, parallelism: int) -> int:
    """Ranges for the exact ntile: at least the parallelism, at most ~2M customers each."""
    return max(1, min(MAX_RANGES, max(parallelism, math.ceil(total / ROWS_PER_RANGE))))


@dataclass(frozen=True)
class _RangePlan:
    """How one axis is ranked: its range boundaries and each (group, range)'s offset."""

    axis: str
    key_cols: list[str]
    key_types: list[T.DataType]
    bounds: list[tuple[Any, ...]]
    offsets: DataFrame


def _plan_axis(
    df: DataFrame, *, axis: str, groups: Sequence[str], total: int, ranges: int, seed: int
) -> _RangePlan:
    """Sample boundaries for ``axis`` and count the rows of each (group, range)."""
    spark = df.sparkSession
    keyed = _with_sort_key(df, axis, groups)
    cols = _key_columns(axis, groups)
    gcols = cols[:-2]
    types = [keyed.schema[c].dataType for c in cols]
    bounds = _boundaries(keyed, cols, total, ranges, seed)
    counts = (
        keyed.groupBy(*gcols, _range_index(cols, types, bounds).alias("_rid")).count().collect()
    )

    # a few thousand (group, range) rows at most: the driver computes the offsets
    per_group: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for row in counts:
        per_group.setdefault(tuple(row[c] for c in gcols), []).append((row["_rid"], row["count"]))
    offsets = []
    for g, items in per_group.items():
        n_group = sum(c for _, c in items)
        running = 0
        for rid, c in sorted(items):
            offsets.append((*g, rid, running, n_group))
            running += c
    schema = T.StructType(
        [
            *(T.StructField(c, T.StringType()) for c in gcols),
            T.StructField("_rid", T.IntegerType()),
            T.StructField("_offset", T.LongType()),
            T.StructField("_n", T.LongType()),
        ]
    )
    return _RangePlan(axis, cols, types, bounds, spark.createDataFrame(offsets, schema))


def _apply_axis(df: DataFrame, plan: _RangePlan, *, groups: Sequence[str], bins: int) -> DataFrame:
    """Add the axis score: position = range offset + row_number inside the range."""
    gcols = plan.key_cols[:-2]
    in_range = (
        Window.partitionBy(*gcols, "_rid")
        .orderBy(*[F.col(c).asc() for c in plan.key_cols[-2:]])
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        _with_sort_key(df, plan.axis, groups)
        .withColumn("_rid", _range_index(plan.key_cols, plan.key_types, plan.bounds))
        .join(F.broadcast(plan.offsets), on=[*gcols, "_rid"], how="left")
        .withColumn("_pos", F.col("_offset") + F.row_number().over(in_range))
        .withColumn(SCORES[plan.axis], ntile_bucket(F.col("_pos"), F.col("_n"), bins))
        .drop(*gcols, "_key", "_rid", "_offset", "_n", "_pos")
    )


def score_ntile(
    df: DataFrame,
    *,
    bins: int,
    partition_by: Sequence[str] = (),
    ranges: int | None = None,
    seed: int = 17,
) -> tuple[DataFrame, ScoringInfo]:
    """Add ``r_score``, ``f_score``, ``m_score`` exactly as Spark's ``ntile(bins)`` would.

    No global window: see the module docstring. Runs a count, a small sample and one small
    aggregation per axis on ``df`` (cache it when it is expensive to compute), then returns a
    lazy plan with one range-partitioned window per axis.

    Input columns: ``customer_id`` (unique within a group), ``recency_days``, ``frequency``,
    ``monetary`` and the ``partition_by`` columns (nulls form their own group).
    """
    groups = list(partition_by)
    total = df.count()
    n_ranges = ranges or auto_ranges(total, df.sparkSession.sparkContext.defaultParallelism)
    plans = [
        _plan_axis(df, axis=a, groups=groups, total=total, ranges=n_ranges, seed=seed)
        for a in ("r", "f", "m")
    ]
    out = df
    for plan in plans:
        out = _apply_axis(out, plan, groups=groups, bins=bins)
    used = {p.axis: len(p.bounds) + 1 for p in plans}
    return out, ScoringInfo(method="ntile", bins=bins, partition_by=tuple(groups), ranges=used)


# --------------------------------------------------------------------------------------------
# cut-point methods


def _cut_score(axis: str, value: Column, cuts: Column, bins: int, inclusive: bool) -> Column:
    """Score from an array of ascending cut points.

    F, M: ``1 + #cuts below value`` (``inclusive``: cuts at or below). R: ``bins - #cuts below
    recency`` so that fewer days score higher.
    """
    if DESCENDING[axis]:
        below = F.size(F.filter(cuts, lambda c: c < value))
        return (F.lit(bins) - below).cast("int")
    below = F.size(F.filter(cuts, (lambda c: c <= value) if inclusive else (lambda c: c < value)))
    return (F.lit(1) + below).cast("int")


def _group_key(row: Any, groups: Sequence[str]) -> str:
    return "|".join(_group_label(row[f"_g{i}"]) for i in range(len(groups)))


def score_quantile(
    df: DataFrame, *, bins: int, partition_by: Sequence[str] = (), relative_error: float = 0.001
) -> tuple[DataFrame, ScoringInfo]:
    """Tie-aware quantile scores; equal values always get the same score.

    Cut point ``i`` is the approximate ``i/bins`` quantile of the measure (of its group); a value
    scores one more than the number of cut points strictly below it (R: reversed).
    """
    groups = list(partition_by)
    gcols = [f"_g{i}" for i in range(len(groups))]
    keyed = df
    for i, g in enumerate(groups):
        keyed = keyed.withColumn(f"_g{i}", _group_col(g))
    probs = [i / bins for i in range(1, bins)]
    accuracy = max(1, round(1 / relative_error))
    aggs = [
        F.percentile_approx(F.col(MEASURES[a]).cast("double"), probs, accuracy).alias(f"_cuts_{a}")
        for a in ("r", "f", "m")
    ]
    cut_rows = (keyed.groupBy(*gcols).agg(*aggs) if gcols else keyed.agg(*aggs)).collect()

    cut_points: dict[str, dict[str, list[float]]] = {a: {} for a in ("r", "f", "m")}
    collapsed: dict[str, dict[str, list[int]]] = {a: {} for a in ("r", "f", "m")}
    for row in cut_rows:
        gk = _group_key(row, groups)
        for a in ("r", "f", "m"):
            cuts = [float(c) for c in row[f"_cuts_{a}"]]
            cut_points[a][gk] = cuts
            empty = _empty_scores(cuts, bins, descending=DESCENDING[a])
            if empty:
                collapsed[a][gk] = empty

    cut_schema = T.StructType(
        [*(T.StructField(c, T.StringType()) for c in gcols)]
        + [T.StructField(f"_cuts_{a}", T.ArrayType(T.DoubleType())) for a in ("r", "f", "m")]
    )
    # each group's own cut points, from its row (the text keys of ``cut_points`` are only for
    # the record: group values holding "|" can make two groups' keys equal)
    cut_df = df.sparkSession.createDataFrame(
        [
            (
                *(r[c] for c in gcols),
                *([float(c) for c in r[f"_cuts_{a}"]] for a in ("r", "f", "m")),
            )
            for r in cut_rows
        ],
        cut_schema,
    )
    joined = (
        keyed.crossJoin(F.broadcast(cut_df))
        if not gcols
        else keyed.join(F.broadcast(cut_df), on=gcols, how="left")
    )
    for a in ("r", "f", "m"):
        value = F.col(MEASURES[a]).cast("double")
        joined = joined.withColumn(
            SCORES[a], _cut_score(a, value, F.col(f"_cuts_{a}"), bins, inclusive=False)
        )
    out = joined.drop(*gcols, *(f"_cuts_{a}" for a in ("r", "f", "m")))
    info = ScoringInfo(
        method="quantile",
        bins=bins,
        partition_by=tuple(groups),
        cut_points=cut_points,
        collapsed=collapsed,
    )
    return out, info


def _empty_scores(cuts: Sequence[float], bins: int, *, descending: bool) -> list[int]:
    """Scores that no value can get because cut points coincide (ties)."""
    reachable = set()
    # a value v gets 1 + #(c < v); probe just below/at/above every cut point
    probes = [c for c in cuts] + [math.nextafter(c, math.inf) for c in cuts] + [-math.inf]
    for v in probes:
        below = sum(1 for c in cuts if c < v)
        reachable.add(bins - below if descending else 1 + below)
    return [s for s in range(1, bins + 1) if s not in reachable]


def score_thresholds(
    df: DataFrame, *, bins: int, thresholds: Thresholds
) -> tuple[DataFrame, ScoringInfo]:
    """Scores from fixed cut points (config ``scoring.thresholds``).

    R: ``recency_days <= recency[0]`` scores ``bins``, ``<= recency[1]`` scores ``bins - 1`` ...
    F, M: ``value >= cuts[i]`` scores at least ``i + 2``.
    """
    lists = {"r": thresholds.recency, "f": thresholds.frequency, "m": thresholds.monetary}
    out = df
    for a in ("r", "f", "m"):
        cuts = F.array(*[F.lit(float(c)) for c in lists[a]])
        out = out.withColumn(
            SCORES[a], _cut_score(a, F.col(MEASURES[a]).cast("double"), cuts, bins, inclusive=True)
        )
    info = ScoringInfo(
        method="thresholds",
        bins=bins,
        cut_points={a: {"": [float(c) for c in v]} for a, v in lists.items()},
    )
    return out, info


def score(df: DataFrame, settings: ScoringSettings) -> tuple[DataFrame, ScoringInfo]:
    """Score features with the configured method.

    Input columns: ``customer_id``, ``recency_days``, ``frequency``, ``monetary`` and the
    ``partition_by`` columns. Output: the input plus ``r_score``, ``f_score``, ``m_score``.
    """
    needed = [ID, *MEASURES.values(), *settings.partition_by]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise MissingColumnsError("features for scoring", missing, df.columns)
    if settings.method == "ntile":
        return score_ntile(
            df, bins=settings.bins, partition_by=settings.partition_by, ranges=settings.ranges
        )
    if settings.method == "quantile":
        return score_quantile(
            df,
            bins=settings.bins,
            partition_by=settings.partition_by,
            relative_error=settings.relative_error,
        )
    if settings.thresholds is None:  # the config model already forbids this
        raise ConfigError("scoring.method 'thresholds' needs scoring.thresholds")
    return score_thresholds(df, bins=settings.bins, thresholds=settings.thresholds)
