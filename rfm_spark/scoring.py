"""R, F and M scores 1..n without ever moving all customers to one partition.

Three methods:

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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.config import ScoringSettings, Thresholds
from rfm_spark.errors import ConfigError, MissingColumnsError
from rfm_spark.sqltext import quote as quote_identifier

MEASURES = {"r": "recency_days", "f": "frequency", "m": "monetary"}
SCORES = {"r": "r_score", "f": "f_score", "m": "m_score"}
# recency: fewer days is better, so its ntile order is descending
DESCENDING = {"r": True, "f": False, "m": False}
AXES = ("r", "f", "m")
ID = "customer_id"
# columns the exact ntile adds while it works (plus _g0, _g1, ... for the groups)
_WORK_COLUMNS = frozenset({"_key_r", "_key_f", "_key_m", "_rid", "_at", "_pos"})
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
    """The sort key of ``axis``: group texts, the measure (ascending = worse to better), id."""
    return [*(f"_g{i}" for i in range(len(groups))), f"_key_{axis}", ID]


def _with_sort_keys(df: DataFrame, groups: Sequence[str]) -> DataFrame:
    """Add ``_g0.._gk`` (groups as text, see :func:`_group_col`) and ``_key_r``, ``_key_f``,
    ``_key_m`` (ascending = worse to better)."""
    out = df
    for i, g in enumerate(groups):
        out = out.withColumn(f"_g{i}", _group_col(g))
    for axis in AXES:
        measure = F.col(MEASURES[axis])
        out = out.withColumn(f"_key_{axis}", -measure if DESCENDING[axis] else measure)
    return out


def sql_literal(value: Any, dtype: T.DataType) -> str:
    """``value`` as a SQL literal of type ``dtype``. Text is written as hex bytes, so no value
    can change the meaning of the expression it is put in.

    Raises:
        TypeError: for a type the sort keys of scoring cannot have.
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


def _at_or_after_sql(cols: Sequence[str], types: Sequence[T.DataType], bound: Sequence[Any]) -> str:
    """SQL for the lexicographic ``(cols) >= bound``."""
    names = [quote_identifier(c) for c in cols]
    lits = [sql_literal(v, t) for v, t in zip(bound, types, strict=True)]
    expr = f"{names[-1]} >= {lits[-1]}"
    for name, lit in zip(reversed(names[:-1]), reversed(lits[:-1]), strict=True):
        expr = f"({name} > {lit} OR ({name} = {lit} AND {expr}))"
    return expr


def _at_or_after(cols: Sequence[str], types: Sequence[T.DataType], bound: Sequence[Any]) -> Column:
    """Lexicographic ``(cols) >= bound`` with each literal typed like its column."""
    return F.expr(_at_or_after_sql(cols, types, bound))


def _range_index_sql(
    cols: Sequence[str], types: Sequence[T.DataType], bounds: Sequence[Sequence[Any]]
) -> str:
    """SQL for the index of the range a row falls in: the number of boundaries <= its key, as a
    binary search in nested ``CASE WHEN``."""

    def search(lo: int, hi: int) -> str:  # answer in [lo, hi]
        if lo == hi:
            return str(lo)
        mid = (lo + hi) // 2  # boundary index mid -> is key >= bounds[mid]?
        return (
            f"CASE WHEN {_at_or_after_sql(cols, types, bounds[mid])} "
            f"THEN {search(mid + 1, hi)} ELSE {search(lo, mid)} END"
        )

    return f"CAST({search(0, len(bounds))} AS INT)"


def _range_index(
    cols: Sequence[str], types: Sequence[T.DataType], bounds: Sequence[Sequence[Any]]
) -> Column:
    """The range index of :func:`_range_index_sql` as a column. Built as SQL text and parsed
    once: hundreds of boundaries cost milliseconds, where building the same tree call by call
    through Py4J took seconds."""
    return F.expr(_range_index_sql(cols, types, bounds))


def _pick_boundaries(keys: list[tuple[Any, ...]], ranges: int) -> list[tuple[Any, ...]]:
    """``ranges - 1`` evenly spaced keys of a sample (distinct, ascending)."""
    if ranges <= 1 or not keys:
        return []
    # unique (customer_id is part of them); Python orders text, integers, decimals and dates as
    # Spark does (measures are never null or NaN: see score_ntile)
    keys = sorted(keys)
    step = len(keys) / ranges
    return sorted({keys[min(len(keys) - 1, int(i * step))] for i in range(1, ranges)})


def auto_ranges(total: int, parallelism: int) -> int:
    """Ranges for the exact ntile: at least the parallelism, at most ~2M customers each."""
    return max(1, min(MAX_RANGES, max(parallelism, math.ceil(total / ROWS_PER_RANGE))))


@dataclass(frozen=True)
class _RangePlan:
    """How one axis is ranked: its range boundaries, the groups present (sorted), and per
    (group, range) the rows before that range in its group and the rows of the group, as one
    dense list: entry ``group_index * ranges + range`` is ``(offset, n)``."""

    axis: str
    key_cols: list[str]
    key_types: list[T.DataType]
    bounds: list[tuple[Any, ...]]
    groups: list[tuple[Any, ...]]
    offsets: list[tuple[int, int]]

    def rid(self) -> Column:
        return _range_index(self.key_cols, self.key_types, self.bounds)


def _plan_ranges(
    keyed: DataFrame, *, groups: Sequence[str], total: int, ranges: int, seed: int
) -> list[_RangePlan]:
    """Boundaries of all three axes from one sample, and the rows of each (axis, group, range)
    from one aggregation: two small jobs whatever the number of ranges and groups."""
    gcols = [f"_g{i}" for i in range(len(groups))]
    cols = {a: _key_columns(a, groups) for a in AXES}
    types = {a: [keyed.schema[c].dataType for c in cols[a]] for a in AXES}
    sample: list[Any] = []
    if ranges > 1 and total > 1:
        fraction = min(1.0, SAMPLE_PER_RANGE * ranges / total)
        sample = (
            keyed.select(*gcols, *(f"_key_{a}" for a in AXES), ID)
            .sample(withReplacement=False, fraction=fraction, seed=seed)
            .collect()
        )
    bounds = {
        a: _pick_boundaries([tuple(r[c] for c in cols[a]) for r in sample], ranges) for a in AXES
    }
    rids = [
        F.struct(F.lit(a).alias("axis"), _range_index(cols[a], types[a], bounds[a]).alias("rid"))
        for a in AXES
    ]
    counts = (
        keyed.select(*gcols, F.explode(F.array(*rids)).alias("_r"))
        .groupBy(*gcols, "_r.axis", "_r.rid")
        .count()
        .collect()
    )
    # (axis, group, range) -> rows: a few thousand at most, the driver computes the offsets
    per_range: dict[str, dict[tuple[Any, ...], dict[int, int]]] = {a: {} for a in AXES}
    for row in counts:
        g = tuple(row[c] for c in gcols)
        per_range[row["axis"]].setdefault(g, {})[row["rid"]] = row["count"]
    plans = []
    for a in AXES:
        present = sorted(per_range[a])  # group texts: Python's order is Spark's (code points)
        offsets: list[tuple[int, int]] = []
        for g in present:
            n_group, running = sum(per_range[a][g].values()), 0
            for rid in range(len(bounds[a]) + 1):  # empty ranges too: the list stays dense
                offsets.append((running, n_group))
                running += per_range[a][g].get(rid, 0)
        plans.append(_RangePlan(a, cols[a], types[a], bounds[a], present, offsets))
    return plans


def _offset_lookup(plan: _RangePlan, gcols: Sequence[str]) -> Column:
    """``struct(offset, n)`` of the row's (group, range) from a literal array (one constant: no
    join, no broadcast job). The group's index is a binary search over the sorted groups, like
    the range's, so a lookup costs O(log groups) whatever the number of entries."""
    if not plan.offsets:  # no rows at all
        return F.expr("named_struct('offset', 0L, 'n', 0L)")
    entries = ", ".join(f"named_struct('offset', {o}L, 'n', {n}L)" for o, n in plan.offsets)
    index = f"{quote_identifier('_rid')} + 1"
    if gcols:  # the group's index, then its block of (ranges) entries
        group = _range_index_sql(gcols, [T.StringType()] * len(gcols), plan.groups[1:])
        index += f" + {len(plan.bounds) + 1} * {group}"
    return F.expr(f"element_at(array({entries}), {index})")


def _apply_axis(df: DataFrame, plan: _RangePlan, *, groups: Sequence[str], bins: int) -> DataFrame:
    """Add the axis score: position = range offset + row_number inside the range."""
    gcols = plan.key_cols[:-2]
    in_range = (
        Window.partitionBy(*gcols, "_rid")
        .orderBy(*[F.col(c).asc() for c in plan.key_cols[-2:]])
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        df.withColumn("_rid", plan.rid())
        .withColumn("_at", _offset_lookup(plan, gcols))
        .withColumn("_pos", F.col("_at.offset") + F.row_number().over(in_range))
        .withColumn(SCORES[plan.axis], ntile_bucket(F.col("_pos"), F.col("_at.n"), bins))
        .drop("_rid", "_at", "_pos")
    )


def score_ntile(
    df: DataFrame,
    *,
    bins: int,
    partition_by: Sequence[str] = (),
    ranges: int | None = None,
    seed: int = 17,
    rows: int | None = None,
) -> tuple[DataFrame, ScoringInfo]:
    """Add ``r_score``, ``f_score``, ``m_score`` exactly as Spark's ``ntile(bins)`` would.

    No global window: see the module docstring. Runs a count (skipped when ``rows`` gives it),
    one small sample and one small aggregation over ``df`` for all three axes (cache ``df``
    when it is expensive to compute), then returns a lazy plan with one range-partitioned
    window per axis.

    Input columns: ``customer_id`` (unique within a group), ``recency_days``, ``frequency``,
    ``monetary`` (never null or NaN, as the features are) and the ``partition_by`` columns
    (nulls form their own group).
    """
    groups = list(partition_by)
    taken = [c for c in df.columns if c in _WORK_COLUMNS or re.fullmatch(r"_g\d+", c)]
    if taken:
        raise ConfigError(
            f"columns {taken} of the features collide with the working columns of the exact "
            f"ntile ({', '.join(sorted(_WORK_COLUMNS))}, _g0, _g1, ...); rename them first"
        )
    total = df.count() if rows is None else rows
    n_ranges = ranges or auto_ranges(total, df.sparkSession.sparkContext.defaultParallelism)
    keyed = _with_sort_keys(df, groups)
    plans = _plan_ranges(keyed, groups=groups, total=total, ranges=n_ranges, seed=seed)
    out = keyed
    for plan in plans:
        out = _apply_axis(out, plan, groups=groups, bins=bins)
    out = out.drop(*(f"_g{i}" for i in range(len(groups))), *(f"_key_{a}" for a in AXES))
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
        for a in AXES
    ]
    cut_rows = (keyed.groupBy(*gcols).agg(*aggs) if gcols else keyed.agg(*aggs)).collect()

    cut_points: dict[str, dict[str, list[float]]] = {a: {} for a in AXES}
    collapsed: dict[str, dict[str, list[int]]] = {a: {} for a in AXES}
    for row in cut_rows:
        gk = _group_key(row, groups)
        for a in AXES:
            cuts = [float(c) for c in row[f"_cuts_{a}"]]
            cut_points[a][gk] = cuts
            empty = _empty_scores(cuts, bins, descending=DESCENDING[a])
            if empty:
                collapsed[a][gk] = empty

    cut_schema = T.StructType(
        [*(T.StructField(c, T.StringType()) for c in gcols)]
        + [T.StructField(f"_cuts_{a}", T.ArrayType(T.DoubleType())) for a in AXES]
    )
    # each group's own cut points, from its row (the text keys of ``cut_points`` are only for
    # the record: group values holding "|" can make two groups' keys equal)
    cut_df = df.sparkSession.createDataFrame(
        [
            (
                *(r[c] for c in gcols),
                *([float(c) for c in r[f"_cuts_{a}"]] for a in AXES),
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
    for a in AXES:
        value = F.col(MEASURES[a]).cast("double")
        joined = joined.withColumn(
            SCORES[a], _cut_score(a, value, F.col(f"_cuts_{a}"), bins, inclusive=False)
        )
    out = joined.drop(*gcols, *(f"_cuts_{a}" for a in AXES))
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
    for a in AXES:
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


def score(
    df: DataFrame, settings: ScoringSettings, *, rows: int | None = None
) -> tuple[DataFrame, ScoringInfo]:
    """Score features with the configured method.

    Input columns: ``customer_id``, ``recency_days``, ``frequency``, ``monetary`` and the
    ``partition_by`` columns. Output: the input plus ``r_score``, ``f_score``, ``m_score``.
    ``rows``: the row count of ``df`` when the caller knows it (saves the ntile method a count).
    """
    needed = [ID, *MEASURES.values(), *settings.partition_by]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise MissingColumnsError("features for scoring", missing, df.columns)
    if settings.method == "ntile":
        return score_ntile(
            df,
            bins=settings.bins,
            partition_by=settings.partition_by,
            ranges=settings.ranges,
            rows=rows,
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
