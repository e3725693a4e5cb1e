"""R, F and M scores 1..n without ever moving all customers to one partition.

Three methods, each able to score within groups (``scoring.partition_by``):

``ntile`` (:mod:`.ntile`)
    Exactly Spark's ``ntile(n)``, from the sort keys at the bucket starts: a narrow map.
``quantile`` (:mod:`.cuts`)
    Tie-aware cut points from ``percentile_approx``; equal values share a score.
``thresholds`` (:mod:`.cuts`)
    Fixed business cut points from the config.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from rfm_spark.config import ScoringSettings
from rfm_spark.errors import ConfigError, MissingColumnsError
from rfm_spark.scoring.cuts import score_quantile, score_thresholds
from rfm_spark.scoring.keys import AXES, ID, MEASURES, SCORES, ScoringInfo
from rfm_spark.scoring.ntile import bucket_starts, score_ntile

__all__ = [
    "AXES",
    "ID",
    "MEASURES",
    "SCORES",
    "ScoringInfo",
    "bucket_starts",
    "score",
    "score_ntile",
    "score_quantile",
    "score_thresholds",
]


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
