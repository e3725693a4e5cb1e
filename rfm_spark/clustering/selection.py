"""Choosing k: fit every candidate on one sample and keep the highest silhouette.

The silhouette compares each customer's distance to its own cluster with the distance to the
nearest other one, so unlike the cost it does not simply improve as k grows. Every candidate is
fitted on the same scaled sample, so the scores are comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import DataFrame

from rfm_spark.clustering import stages
from rfm_spark.clustering.model import KScore


@dataclass(frozen=True)
class Choice:
    """The best candidate so far.

    Attributes:
        silhouette: Its silhouette on the training sample.
        k: Clusters asked for.
        pipeline: The whole fitted pipeline (preparation and clustering stages).
        centres: Cluster centres in scaled log space, indexed by raw prediction.
    """

    silhouette: float
    k: int
    pipeline: PipelineModel
    centres: list[list[float]]


def _silhouette(predictions: DataFrame, clusters: int) -> float:
    """Silhouette of the predictions, NaN when fewer than two clusters are non-empty."""
    if clusters < 2:
        return math.nan
    evaluator = ClusteringEvaluator(
        featuresCol=stages.SCALED,
        predictionCol=stages.RAW,
        metricName="silhouette",
        distanceMeasure="squaredEuclidean",
    )
    return float(evaluator.evaluate(predictions))


def score_ks(
    prep: PipelineModel,
    scaled: DataFrame,
    ks: Sequence[int],
    *,
    algorithm: str,
    seed: int,
    max_iter: int | None,
    n_init: int,
) -> tuple[list[KScore], Choice | None]:
    """Fit and score every k in ``ks``; keep the highest silhouette (ties: the smaller k).

    Args:
        prep: The fitted preparation stages (:func:`stages.preparation`).
        scaled: The training sample after ``prep``, :data:`stages.SCALED` only.
        ks: Candidate k values, in increasing order.
        algorithm: One of :data:`~rfm_spark.clustering.ALGORITHMS`.
        seed: Seed of the first fit of each k.
        max_iter: Iterations of the algorithm (MLlib's default when None).
        n_init: Fits per k (:func:`stages.fit_best`).

    Returns:
        The score of every k, in order, and the best candidate, or None when no k gave two or
        more non-empty clusters.
    """
    best: Choice | None = None
    scores: list[KScore] = []
    for k in ks:
        last = stages.fit_best(scaled, algorithm, k, seed, max_iter, n_init)
        fitted = PipelineModel(stages=[*prep.stages, last])
        used = sum(1 for size in last.summary.clusterSizes if size > 0)
        score = KScore(k, _silhouette(last.transform(scaled), used), stages.cost(fitted))
        scores.append(score)
        if not math.isnan(score.silhouette) and (
            best is None or score.silhouette > best.silhouette
        ):
            best = Choice(score.silhouette, k, fitted, stages.centres(fitted))
    return scores, best


def reason(
    scores: Sequence[KScore],
    k: int,
    silhouette: float,
    sample_rows: int,
    customers: int,
    given: bool,
) -> str:
    """One sentence on why ``k`` was chosen, naming the runner-up when there is one."""
    sample = f"a sample of {sample_rows:,} of {customers:,} customers"
    if given:
        return f"k={k} as given; silhouette {silhouette:.3f} on {sample}."
    valid = sorted(
        (s for s in scores if not math.isnan(s.silhouette)), key=lambda s: (-s.silhouette, s.k)
    )
    text = (
        f"k={k} has the highest silhouette ({silhouette:.3f}) of k={scores[0].k}..{scores[-1].k} "
        f"on {sample}"
    )
    if len(valid) > 1:
        runner = valid[1]
        text += f"; next best k={runner.k} ({runner.silhouette:.3f})"
    return text + "."
