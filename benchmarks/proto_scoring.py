"""Prototype of a faster exact ntile (benchmarks only; a proposal for rfm_spark.scoring).

``rfm_spark.scoring.score_ntile`` finds each row's global position with one range-partitioned
window per axis: three shuffles and sorts of the full feature rows, plus a count, a sample and
a range count per axis (seven jobs) before them.

Here the position is only needed at the ``bins - 1`` bucket starts. With the per-range counts
known, each bucket start falls in one known range; ranking just those few ranges (a window over
a narrow projection of a handful of ranges) gives the exact sort key at each bucket start (the
"cut key"). Since sort keys are unique (they end with ``customer_id``), a row's score is
``1 + #(cut keys <= its key)``: a narrow map over the features, all three axes at once, no
shuffle of the feature rows, no window over all customers. Jobs: count, one sample for the
three axes, one range count for the three axes, one small ranking of the boundary ranges.
Equal to Spark's ``ntile`` by construction (checked against the naive global window in
benchmarks/scoring.py).
"""

from __future__ import annotations

import math
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm_spark.scoring import (
    ID,
    MAX_RANGES,
    SCORES,
    _at_or_after,
    _range_index,
    _with_sort_keys,
)

ROWS_PER_RANGE = 50_000
SAMPLE_PER_RANGE = 40
AXES = ("r", "f", "m")


def bucket_starts(total: int, bins: int) -> list[int]:
    """1-based positions where buckets 2..bins start under Spark's ntile."""
    size, padded = divmod(total, bins)
    return [
        k * size + min(k, padded) + 1 for k in range(1, bins) if k * size + min(k, padded) < total
    ]


def score_ntile_cutkeys(df: DataFrame, *, bins: int, seed: int = 17) -> DataFrame:
    total = df.count()
    par = df.sparkSession.sparkContext.defaultParallelism
    n_ranges = max(1, min(MAX_RANGES, max(4 * par, math.ceil(total / ROWS_PER_RANGE))))
    keyed = _with_sort_keys(df, [])
    for a in AXES:
        keyed = keyed.withColumnRenamed(f"_key_{a}", f"_k{a}")
    types = {a: [keyed.schema[f"_k{a}"].dataType, keyed.schema[ID].dataType] for a in AXES}
    cols = {a: [f"_k{a}", ID] for a in AXES}

    # one sample for the three axes
    fraction = min(1.0, SAMPLE_PER_RANGE * n_ranges / max(total, 1))
    sample = keyed.select(ID, *(f"_k{a}" for a in AXES)).sample(False, fraction, seed).collect()
    bounds: dict[str, list[tuple[Any, ...]]] = {}
    for a in AXES:
        keys = sorted((r[f"_k{a}"], r[ID]) for r in sample)
        step = len(keys) / n_ranges if keys else 0
        picked = (
            [keys[min(len(keys) - 1, int(i * step))] for i in range(1, n_ranges)] if keys else []
        )
        bounds[a] = sorted(set(picked))
    rid = {a: _range_index(cols[a], types[a], bounds[a]) for a in AXES}

    # one range count for the three axes
    counts = (
        keyed.select(
            F.explode(
                F.array(*[F.struct(F.lit(a).alias("axis"), rid[a].alias("rid")) for a in AXES])
            ).alias("x")
        )
        .groupBy("x.axis", "x.rid")
        .count()
        .collect()
    )
    per_axis: dict[str, list[tuple[int, int]]] = {a: [] for a in AXES}
    for r in counts:
        per_axis[r["axis"]].append((r["rid"], r["count"]))
    # which range holds each bucket start, and the rank inside it
    wanted: dict[str, list[tuple[int, int]]] = {a: [] for a in AXES}
    starts = bucket_starts(total, bins)
    for a in AXES:
        running = 0
        for r_id, c in sorted(per_axis[a]):
            for pos in starts:
                if running < pos <= running + c:
                    wanted[a].append((r_id, pos - running))
            running += c

    # rank only the boundary ranges (narrow rows), keep the rows at the bucket starts
    parts = []
    for a in AXES:
        rids = sorted({r for r, _ in wanted[a]})
        if not rids:
            continue
        w = Window.partitionBy("rid").orderBy("k", ID)
        parts.append(
            keyed.select(
                F.lit(a).alias("axis"),
                rid[a].alias("rid"),
                F.col(f"_k{a}").cast("decimal(38,2)").alias("k"),
                ID,
            )
            .filter(F.col("rid").isin(rids))
            .withColumn("pos", F.row_number().over(w))
            .join(
                df.sparkSession.createDataFrame(
                    [(a, r, p) for r, p in wanted[a]], "axis string, rid int, pos int"
                ),
                on=["axis", "rid", "pos"],
                how="inner",
            )
        )
    cut_rows = parts[0]
    for p in parts[1:]:
        cut_rows = cut_rows.unionByName(p)
    cuts: dict[str, list[tuple[Any, ...]]] = {a: [] for a in AXES}
    for r in cut_rows.collect():
        cuts[r["axis"]].append((r["k"], r[ID]))

    def score(a: str) -> Column:
        expr: Column = F.lit(1)
        for key in sorted(cuts[a]):
            expr = expr + F.when(_at_or_after(cols[a], types[a], list(key)), 1).otherwise(0)
        return expr.cast("int").alias(SCORES[a])

    return keyed.select(*df.columns, *(score(a) for a in AXES))
