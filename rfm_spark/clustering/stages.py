"""The MLlib stages of the cluster pipeline and what is read back from a fitted one.

The pipeline is

1. ``SQLTransformer``: ``log1p`` of ``recency_days``, ``frequency`` and ``monetary`` (monetary
   clipped at 0 first, returns can make it negative; nulls count as 0 so that every customer
   gets a cluster),
2. ``VectorAssembler`` and ``StandardScaler`` (unit variance, not centred: bisecting k-means
   perturbs a centre in proportion to its norm to split it, so it cannot split data centred on
   the origin),
3. ``KMeans``, ``BisectingKMeans`` or ``GaussianMixture`` with a fixed seed.

The log transform tames the long tails of frequency and spend, and scaling gives each feature
the same weight in the distance the algorithms minimise.
"""

from __future__ import annotations

import math
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import (
    BisectingKMeans,
    BisectingKMeansModel,
    GaussianMixture,
    GaussianMixtureModel,
    KMeans,
    KMeansModel,
)
from pyspark.ml.feature import SQLTransformer, StandardScaler, StandardScalerModel, VectorAssembler
from pyspark.sql import DataFrame

from rfm_spark.clustering.model import FEATURES
from rfm_spark.errors import ModelError

PREFIX = "_rfm_cluster_"  # prefix of the pipeline's intermediate columns
LOG_COLS = tuple(f"{PREFIX}log_{f}" for f in FEATURES)
VECTOR = f"{PREFIX}vector"
SCALED = f"{PREFIX}scaled"
RAW = f"{PREFIX}raw"
PROBABILITY = f"{PREFIX}probability"


def _log_statement() -> str:
    """SQL of the log-transform stage: ``log1p(greatest(coalesce(x, 0), 0))`` per feature."""
    exprs = ", ".join(
        f"log1p(greatest(coalesce(CAST(`{f}` AS DOUBLE), 0D), 0D)) AS `{c}`"
        for f, c in zip(FEATURES, LOG_COLS, strict=True)
    )
    return f"SELECT *, {exprs} FROM __THIS__"


def preparation() -> Pipeline:
    """Log transform, vector and scaling: the stages before the clustering algorithm.

    They are fitted once per training sample and shared by every k tried, so only the last
    stage is refitted per candidate.
    """
    return Pipeline(
        stages=[
            SQLTransformer(statement=_log_statement()),
            VectorAssembler(inputCols=list(LOG_COLS), outputCol=VECTOR),
            StandardScaler(inputCol=VECTOR, outputCol=SCALED, withMean=False, withStd=True),
        ]
    )


def _estimator(algorithm: str, k: int, seed: int, max_iter: int | None) -> Any:
    """The unfitted clustering stage, reading :data:`SCALED` and writing :data:`RAW`."""
    common: dict[str, Any] = {"k": k, "seed": seed, "featuresCol": SCALED, "predictionCol": RAW}
    if max_iter is not None:
        common["maxIter"] = max_iter
    if algorithm == "kmeans":
        return KMeans(**common)
    if algorithm == "bisecting_kmeans":
        return BisectingKMeans(**common)
    return GaussianMixture(probabilityCol=PROBABILITY, **common)


def fit_best(
    scaled: DataFrame, algorithm: str, k: int, seed: int, max_iter: int | None, n_init: int
) -> Any:
    """The best of ``n_init`` fits (seeds ``seed``, ``seed + 1``, ...).

    Best is the lowest cost, or the highest log-likelihood for a Gaussian mixture. One k-means
    run lands in a poor local optimum often enough (about half the seeds on the demo personas)
    that a single fit is not stable.
    """
    best: Any = None
    best_key = math.inf
    for i in range(n_init):
        fitted: Any = _estimator(algorithm, k, seed + i, max_iter).fit(scaled)
        key = (
            -float(fitted.summary.logLikelihood)
            if isinstance(fitted, GaussianMixtureModel)
            else float(fitted.summary.trainingCost)
        )
        if best is None or key < best_key:
            best, best_key = fitted, key
    return best


def centres(fitted: PipelineModel) -> list[list[float]]:
    """Cluster centres in scaled log space, indexed by raw prediction."""
    last: Any = fitted.stages[-1]
    if isinstance(last, GaussianMixtureModel):
        return [[float(x) for x in g.mean.toArray()] for g in last.gaussians]
    if isinstance(last, (KMeansModel, BisectingKMeansModel)):
        return [[float(x) for x in c] for c in last.clusterCenters()]
    raise ModelError(f"unexpected last pipeline stage {type(last).__name__}")  # pragma: no cover


def cost(fitted: PipelineModel) -> float | None:
    """Within-cluster sum of squares of a (bisecting) k-means pipeline; None for a mixture."""
    last = fitted.stages[-1]
    if isinstance(last, (KMeansModel, BisectingKMeansModel)):
        return float(last.summary.trainingCost)
    return None


def scale(fitted: PipelineModel) -> tuple[float, ...]:
    """Standard deviation of each log feature, as the fitted scaler divides by it."""
    scaler = fitted.stages[2]
    assert isinstance(scaler, StandardScalerModel)
    # a constant feature has std 0 and the scaler maps it to 0; keep the inverse finite
    return tuple(float(s) if s > 0 else 1.0 for s in scaler.std.toArray())
