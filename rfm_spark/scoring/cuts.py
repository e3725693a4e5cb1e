"""Scores from cut points: tie-aware quantiles, or fixed business thresholds.

``quantile``: cut point ``i`` is the approximate ``i/bins`` quantile of the measure (of its
group, from one ``percentile_approx`` aggregation for all three measures); a value scores one
more than the number of cut points strictly below it, so equal values always share a score.
When ties make cut points coincide some scores stay empty, and that is reported.
``thresholds``: the configured cut points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.config import Thresholds
from rfm_spark.scoring.keys import (
    AXES,
    DESCENDING,
    MEASURES,
    SCORES,
    ScoringInfo,
    group_columns,
    group_label,
    with_group_texts,
)


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


def _empty_scores(cuts: Sequence[float], bins: int, *, descending: bool) -> list[int]:
    """Scores that no value can get because cut points coincide (ties)."""
    reachable = set()
    # a value v gets 1 + #(c < v); probe just below/at/above every cut point
    probes = [*cuts, *(math.nextafter(c, math.inf) for c in cuts), -math.inf]
    for v in probes:
        below = sum(1 for c in cuts if c < v)
        reachable.add(bins - below if descending else 1 + below)
    return [s for s in range(1, bins + 1) if s not in reachable]


def score_quantile(
    df: DataFrame, *, bins: int, partition_by: Sequence[str] = (), relative_error: float = 0.001
) -> tuple[DataFrame, ScoringInfo]:
    """Tie-aware quantile scores (module docstring); equal values always get the same score."""
    groups = list(partition_by)
    gcols = group_columns(groups)
    keyed = with_group_texts(df, groups)
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
        label = group_label(row, groups)
        for a in AXES:
            cuts = [float(c) for c in row[f"_cuts_{a}"]]
            cut_points[a][label] = cuts
            empty = _empty_scores(cuts, bins, descending=DESCENDING[a])
            if empty:
                collapsed[a][label] = empty

    cut_schema = T.StructType(
        [*(T.StructField(c, T.StringType()) for c in gcols)]
        + [T.StructField(f"_cuts_{a}", T.ArrayType(T.DoubleType())) for a in AXES]
    )
    # each group's own cut points, from its row (the text labels of ``cut_points`` are only for
    # the record: group values holding "|" can make two groups' labels equal)
    cut_df = df.sparkSession.createDataFrame(
        [
            (*(r[c] for c in gcols), *([float(c) for c in r[f"_cuts_{a}"]] for a in AXES))
            for r in cut_rows
        ],
        cut_schema,
    )
    joined = (
        keyed.join(F.broadcast(cut_df), on=gcols, how="left")
        if gcols
        else keyed.crossJoin(F.broadcast(cut_df))
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
