"""Exactly Spark's ``ntile``, without sorting the customers.

``ntile(n) OVER (ORDER BY key)`` puts the row at 1-based position ``p`` of ``t`` rows into
bucket ``1 + #(bucket starts <= p)``, where the bucket starts are the positions at which buckets
2..n begin (:func:`bucket_starts`). Sort keys are unique (they end with ``customer_id``), so
``p >= start`` exactly when the row's key is at or after the key of the row at that start, its
*cut key*. A row's score is therefore ``1 + #(cut keys <= its key)``: a narrow map over the
features, all three axes at once, with no shuffle and no window over all customers.

Finding the cut keys takes a few small jobs for R, F and M together, whatever the data size:

1. a count (skipped when the caller knows it);
2. a sample, whose evenly spaced keys cut each axis's key space into ranges;
3. one aggregation of rows per (axis, group, range): the range that holds each bucket start
   and the start's rank inside it follow on the driver;
4. one ranking of only those ranges (a window over a narrow projection), keeping the rows at
   the bucket starts.

The ranges only decide how work is spread: the cut keys, and so the scores, are the same for
any sample. The orders are ``recency_days DESC, customer_id`` (R), ``frequency, customer_id``
(F) and ``monetary, customer_id`` (M); with ``partition_by`` everything is per group.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import ConfigError
from rfm_spark.schemas import cast
from rfm_spark.scoring.keys import (
    AXES,
    ID,
    SCORES,
    ScoringInfo,
    count_at_or_before,
    count_at_or_before_sql,
    group_columns,
    key_columns,
    with_sort_keys,
)
from rfm_spark.sqltext import quote, sql_literal

_WORK_COLUMNS = frozenset({"_key_r", "_key_f", "_key_m"})  # and _g0, _g1, ... for the groups
SAMPLE_PER_RANGE = 40
# small ranges keep step 4 cheap: it shuffles only the rows of the ranges it ranks
ROWS_PER_RANGE = 200_000
# A row's range is a CASE WHEN tree over the boundaries of each axis, compiled into the code
# Spark generates for the stage: past about 100 ranges that code no longer compiles, and Spark
# logs a compiler error and interprets the stage instead, several times slower. More ranges
# also stop paying once each is small (the ranking then holds few rows either way).
MAX_RANGES = 64
# counting by (R, F, M) range triples while there are at most this many of them
TRIPLES = 27_000
# Scores come from a CASE WHEN tree over all groups' cut keys while an axis has at most this
# many (13 groups of 5 scores); with more, the tree would not compile (about 100 keys), so each
# row finds its group's few cut keys through a broadcast join instead.
LITERAL_CUTS = 52

Group = tuple[str, ...]


def bucket_starts(total: int, bins: int) -> list[int]:
    """1-based positions at which buckets 2..bins begin under Spark's ``ntile(bins)`` over
    ``total`` rows: the first ``total % bins`` buckets hold one row more than the others."""
    size, padded = divmod(total, bins)
    starts = (k * size + min(k, padded) + 1 for k in range(1, bins))
    return [s for s in starts if s <= total]


def auto_ranges(total: int) -> int:
    """Ranges for the cut keys: ~200k customers each, at most :data:`MAX_RANGES` (whatever the
    cluster's parallelism: the ranking's tasks are the ranges that hold bucket starts)."""
    return max(1, min(MAX_RANGES, math.ceil(total / ROWS_PER_RANGE)))


@dataclass(frozen=True)
class _Axis:
    """One axis's sort key columns and types, and the boundaries of its ranges."""

    axis: str
    cols: list[str]
    types: list[T.DataType]
    bounds: list[tuple[Any, ...]]

    def rid(self) -> Column:
        """The row's range: the number of boundaries at or before its key."""
        return count_at_or_before(self.cols, self.types, self.bounds)


def _pick_boundaries(keys: list[tuple[Any, ...]], ranges: int) -> list[tuple[Any, ...]]:
    """``ranges - 1`` evenly spaced keys of a sample (distinct, ascending)."""
    if ranges <= 1 or not keys:
        return []
    # unique (customer_id is part of them); Python orders text, integers, decimals and dates as
    # Spark does (measures are never null or NaN: see score_ntile)
    keys = sorted(keys)
    step = len(keys) / ranges
    return sorted({keys[min(len(keys) - 1, int(i * step))] for i in range(1, ranges)})


def _sample_ranges(
    keyed: DataFrame, *, groups: Sequence[str], total: int, ranges: int, seed: int
) -> list[_Axis]:
    """Range boundaries of all three axes from one sample (step 2)."""
    cols = {a: key_columns(a, groups) for a in AXES}
    sample: list[Any] = []
    if ranges > 1 and total > 1:
        fraction = min(1.0, SAMPLE_PER_RANGE * ranges / total)
        sample = (
            keyed.select(*group_columns(groups), *(f"_key_{a}" for a in AXES), ID)
            .sample(withReplacement=False, fraction=fraction, seed=seed)
            .collect()
        )
    return [
        _Axis(
            axis=a,
            cols=cols[a],
            types=[keyed.schema[c].dataType for c in cols[a]],
            bounds=_pick_boundaries([tuple(r[c] for c in cols[a]) for r in sample], ranges),
        )
        for a in AXES
    ]


def _range_counts(keyed: DataFrame, axes: list[_Axis], gcols: list[str]) -> dict[str, Any]:
    """Rows per (axis, group, range) from one aggregation (step 3): ``{axis: {group: {range:
    rows}}}``, a few thousand entries at most.

    With few ranges the rows are counted per (group, R range, F range, M range), at most
    ranges^3 counts per group that the driver adds up per axis: no row is split in three. With
    many, each row becomes one row per axis first."""
    counts: dict[str, dict[Group, dict[int, int]]] = {a: {} for a in AXES}
    if max(len(x.bounds) + 1 for x in axes) ** len(axes) <= TRIPLES:
        rids = [x.rid().alias(f"_rid_{x.axis}") for x in axes]
        for row in keyed.groupBy(*gcols, *rids).count().collect():
            group = tuple(row[c] for c in gcols)
            for x in axes:
                per_range = counts[x.axis].setdefault(group, {})
                rid = row[f"_rid_{x.axis}"]
                per_range[rid] = per_range.get(rid, 0) + row["count"]
        return counts
    structs = [F.struct(F.lit(x.axis).alias("axis"), x.rid().alias("rid")) for x in axes]
    rows = (
        keyed.select(*gcols, F.explode(F.array(*structs)).alias("_r"))
        .groupBy(*gcols, "_r.axis", "_r.rid")
        .count()
        .collect()
    )
    for row in rows:
        group = tuple(row[c] for c in gcols)
        counts[row["axis"]].setdefault(group, {})[row["rid"]] = row["count"]
    return counts


def _wanted(counts: dict[str, Any], bins: int) -> list[tuple[str, Group, int, int]]:
    """``(axis, group, range, rank in range)`` of every bucket start."""
    wanted = []
    for axis, per_group in counts.items():
        for group, per_range in per_group.items():
            starts = bucket_starts(sum(per_range.values()), bins)
            running = 0
            for rid in sorted(per_range):
                n = per_range[rid]
                wanted += [
                    (axis, group, rid, s - running) for s in starts if running < s <= running + n
                ]
                running += n
    return wanted


def _one_of(columns: Sequence[str], tuples: Sequence[Sequence[str]]) -> Column:
    """``(columns) IN (tuples)`` for tuples of SQL literals, as structs (one hashed set)."""

    def struct(values: Sequence[str]) -> str:
        return "named_struct(" + ", ".join(f"'f{i}', {v}" for i, v in enumerate(values)) + ")"

    literals = ", ".join(struct(t) for t in tuples)
    return F.expr(f"{struct([quote(c) for c in columns])} IN ({literals})")


def _cut_keys(
    keyed: DataFrame, axes: list[_Axis], gcols: list[str], wanted: list[tuple[str, Group, int, int]]
) -> dict[str, list[tuple[Any, ...]]]:
    """The sort keys at the bucket starts, per axis, ascending (step 4): only the ranges that
    hold a start are ranked, over a narrow projection. A row outside all of them is dropped
    before its three axes are split into rows of their own."""
    cuts: dict[str, list[tuple[Any, ...]]] = {a: [] for a in AXES}
    if not wanted:
        return cuts
    text = T.StringType()
    place = [
        (sql_literal(a, text), *(sql_literal(v, text) for v in g), str(rid), str(rank))
        for a, g, rid, rank in wanted
    ]
    in_wanted_range = []  # the row's range on some axis holds a bucket start
    for x in axes:
        ranges = sorted({p[1:-1] for p in place if p[0] == sql_literal(x.axis, text)})
        if ranges:
            in_wanted_range.append(_one_of([*gcols, f"_rid_{x.axis}"], ranges))
    key_type = {x.axis: x.types[-2] for x in axes}
    exploded = F.array(
        *[
            F.struct(
                F.lit(x.axis).alias("axis"),
                F.col(f"_rid_{x.axis}").alias("rid"),
                *[
                    (F.col(f"_key_{b}") if b == x.axis else cast(F.lit(None), key_type[b])).alias(
                        f"_k{b}"
                    )
                    for b in AXES
                ],
            )
            for x in axes
        ]
    )
    part = ["axis", *gcols, "rid"]
    in_range = Window.partitionBy(*part).orderBy("_kr", "_kf", "_km", ID)
    rows = (
        keyed.select(
            *gcols,
            ID,
            *(f"_key_{a}" for a in AXES),
            *(x.rid().alias(f"_rid_{x.axis}") for x in axes),
        )
        .filter(reduce(lambda a, b: a | b, in_wanted_range))
        .select(*gcols, ID, F.explode(exploded).alias("_x"))
        .select(*gcols, ID, "_x.*")
        .filter(_one_of(part, sorted({p[:-1] for p in place})))
        .withColumn("_rank", F.row_number().over(in_range))
        .filter(_one_of([*part, "_rank"], place))
        .collect()
    )
    for row in rows:
        axis = row["axis"]
        cuts[axis].append((*(row[c] for c in gcols), row[f"_k{axis}"], row[ID]))
    return {a: sorted(keys) for a, keys in cuts.items()}


def _score_column(x: _Axis, cuts: list[tuple[Any, ...]], groups: list[Group]) -> Column:
    """``1 + #(cut keys of the row's group <= its key)``. All groups' cut keys sit in one sorted
    list; those of earlier groups are subtracted by the row's group index (a binary search over
    the sorted groups too)."""
    at_or_before = count_at_or_before_sql(x.cols, x.types, cuts)
    if len(groups) <= 1:
        return F.expr(f"1 + {at_or_before}")
    gcols = x.cols[:-2]
    before, running = [], 0
    for g in groups:
        before.append(str(running))
        running += sum(1 for c in cuts if c[: len(gcols)] == g)
    group_index = count_at_or_before_sql(gcols, [T.StringType()] * len(gcols), groups[1:])
    return F.expr(f"1 + {at_or_before} - element_at(array({', '.join(before)}), {group_index} + 1)")


def _scored_by_group(
    keyed: DataFrame,
    axes: list[_Axis],
    gcols: list[str],
    cuts: dict[str, list[tuple[Any, ...]]],
    groups: list[Group],
) -> DataFrame:
    """The scores of many groups: one row per group holds each axis's cut keys (at most
    ``bins - 1``), broadcast to the rows of that group, and a row's score is ``1 + #(its
    group's cut keys <= its key)``. The customers are not shuffled."""
    per_group: dict[Group, dict[str, list[tuple[Any, ...]]]] = {
        g: {x.axis: [] for x in axes} for g in groups
    }
    for x in axes:
        for c in cuts[x.axis]:
            per_group[c[: len(gcols)]][x.axis].append(c[len(gcols) :])

    def key_type(x: _Axis) -> T.StructType:
        return T.StructType([T.StructField("k", x.types[-2]), T.StructField("id", x.types[-1])])

    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in gcols]
        + [T.StructField(f"_cuts_{x.axis}", T.ArrayType(key_type(x))) for x in axes]
    )
    table = keyed.sparkSession.createDataFrame(
        [(*g, *(per_group[g][x.axis] for x in axes)) for g in groups], schema
    )

    def score(x: _Axis) -> Column:
        key = F.struct(F.col(f"_key_{x.axis}").alias("k"), F.col(ID).alias("id"))
        return 1 + F.size(F.filter(f"_cuts_{x.axis}", lambda c: c <= key))

    joined = keyed.join(F.broadcast(table), on=gcols, how="left")
    scores = {SCORES[x.axis]: score(x).cast("int") for x in axes}
    return joined.withColumns(scores).drop(*(f"_cuts_{x.axis}" for x in axes))


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

    Runs the small jobs of the module docstring over ``df`` (cache it when it is expensive to
    compute; ``rows`` saves the count), then returns a lazy, narrow plan.

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
    n_ranges = ranges or auto_ranges(total)
    keyed = with_sort_keys(df, groups)
    gcols = group_columns(groups)
    axes = _sample_ranges(keyed, groups=groups, total=total, ranges=n_ranges, seed=seed)
    counts = _range_counts(keyed, axes, gcols)
    cuts = _cut_keys(keyed, axes, gcols, _wanted(counts, bins))
    present = sorted(counts["r"])  # group texts: Python's order is Spark's (code points)
    if max(len(keys) for keys in cuts.values()) <= LITERAL_CUTS:
        scored = keyed.withColumns(
            {SCORES[x.axis]: _score_column(x, cuts[x.axis], present).cast("int") for x in axes}
        )
    else:
        scored = _scored_by_group(keyed, axes, gcols, cuts, present)
    out = scored.drop(*gcols, *(f"_key_{a}" for a in AXES))
    used = {x.axis: len(x.bounds) + 1 for x in axes}
    return out, ScoringInfo(method="ntile", bins=bins, partition_by=tuple(groups), ranges=used)
