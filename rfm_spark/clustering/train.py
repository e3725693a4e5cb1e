"""Training: sample one snapshot's features, choose k, and build a model with stable ids.

Training runs on a sample capped in size, so its cost does not grow with the customer base;
the model then assigns every customer with a narrow transformation
(:func:`~rfm_spark.clustering.assign_clusters`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.clustering import stages
from rfm_spark.clustering.matching import MATCH_MAX_DISTANCE, StableIds, stable_ids
from rfm_spark.clustering.model import ALGORITHMS, FEATURES, ClusterModel, KScore, TrainResult
from rfm_spark.clustering.naming import name_clusters
from rfm_spark.clustering.selection import Choice, reason, score_ks
from rfm_spark.errors import ConfigError, MissingColumnsError, ModelError
from rfm_spark.session import training_partitions


@dataclass(frozen=True)
class _Fit:
    """What fitting on the sample produced, kept once the sample is released."""

    sample_rows: int
    scores: list[KScore]
    best: Choice
    population: dict[str, float]


def _check_train_args(
    features: DataFrame,
    algorithm: str,
    k: int | None,
    k_min: int,
    k_max: int,
    sample_fraction: float,
    max_sample_rows: int,
) -> list[int]:
    """The k values to try, after failing fast on arguments no fit could honour."""
    missing = [f for f in FEATURES if f not in features.columns]
    if missing:
        raise MissingColumnsError(
            "the features to cluster",
            missing,
            features.columns,
            "Pass the output of rfm_features().",
        )
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"unknown clustering algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}"
        )
    if not 0.0 < sample_fraction <= 1.0:
        raise ConfigError(f"sample fraction must be in (0, 1], got {sample_fraction}")
    if max_sample_rows < 2:
        raise ConfigError(f"max sample rows must be at least 2, got {max_sample_rows}")
    if k is not None:
        if k < 2:
            raise ConfigError(f"--k must be at least 2, got {k}")
        return [k]
    if k_min < 2 or k_max < k_min:
        raise ConfigError(
            f"the k range must satisfy 2 <= k-min <= k-max, got k-min {k_min}, k-max {k_max}"
        )
    return list(range(k_min, k_max + 1))


def _check_previous(previous: ClusterModel | None) -> None:
    """Fail when the previous model's centroids cannot be compared with this model's."""
    if previous is not None and tuple(previous.features) != FEATURES:
        raise ModelError(
            f"the previous model (version {previous.version}) uses features "
            f"{', '.join(previous.features)}, this one {', '.join(FEATURES)}; "
            "train without the previous model"
        )


def _sample(
    data: DataFrame, customers: int, sample_fraction: float, max_sample_rows: int, seed: int
) -> DataFrame:
    """The training sample: ``sample_fraction`` of ``data``, lowered to about the row cap."""
    fraction = min(sample_fraction, max_sample_rows / customers)
    if fraction < 1:
        return data.sample(withReplacement=False, fraction=fraction, seed=seed)
    return data


def _population(sample: DataFrame) -> dict[str, float]:
    """Median of each feature (monetary clipped at 0) on the training sample."""
    cols = [f"{stages.PREFIX}q_{f}" for f in FEATURES]
    clipped = sample.select(
        *[
            F.greatest(F.coalesce(F.col(f).cast("double"), F.lit(0.0)), F.lit(0.0)).alias(c)
            for f, c in zip(FEATURES, cols, strict=True)
        ]
    )
    qs = clipped.approxQuantile(cols, [0.5], 0.001)
    return {f: float(q[0]) for f, q in zip(FEATURES, qs, strict=True)}


def _fit_sample(
    sample: DataFrame,
    ks: Sequence[int],
    *,
    algorithm: str,
    seed: int,
    max_iter: int | None,
    n_init: int,
) -> _Fit:
    """Fit the preparation stages once, then score every k on the scaled sample (cached).

    Raises:
        ModelError: The sample is smaller than the largest k, or no k gave two clusters.
    """
    sample_rows = sample.count()
    if sample_rows < max(ks):
        raise ModelError(
            f"the training sample has {sample_rows} customer(s), fewer than k={max(ks)}; "
            "raise the sample fraction or lower k"
        )
    prep = stages.preparation().fit(sample)
    # The sample is small by design; spread over many partitions, MLlib's per-iteration
    # jobs would cost more in task overhead than in computation.
    partitions = training_partitions(sample.sparkSession, sample_rows)
    scaled = prep.transform(sample).select(stages.SCALED).coalesce(partitions).cache()
    try:
        scores, best = score_ks(
            prep, scaled, ks, algorithm=algorithm, seed=seed, max_iter=max_iter, n_init=n_init
        )
    finally:
        scaled.unpersist()
    population = _population(sample)
    if best is None:
        raise ModelError(
            f"no k in {ks[0]}..{ks[-1]} split the {sample_rows} sampled customers into two or "
            "more clusters; the features may be (nearly) constant"
        )
    return _Fit(sample_rows, scores, best, population)


def _original_units(centre: Sequence[float], scale: Sequence[float]) -> dict[str, float]:
    """A centre in scaled log space back in the features' units (a typical member)."""
    return {f: round(math.expm1(c * s), 4) for f, c, s in zip(FEATURES, centre, scale, strict=True)}


def _build_model(
    fit: _Fit,
    *,
    snapshot_date: dt.date,
    algorithm: str,
    seed: int,
    previous: ClusterModel | None,
    max_match_distance: float | None,
) -> tuple[ClusterModel, StableIds]:
    """The unsaved model of the chosen candidate: stable ids, centroids and names.

    Clusters matched to the previous model keep its names; only new clusters are named, and
    their names avoid the kept ones.
    """
    choice = fit.best
    scale = stages.scale(choice.pipeline)
    ids = stable_ids(choice.centres, scale, previous, max_match_distance)
    centroids = {ids.id_map[raw]: _original_units(c, scale) for raw, c in enumerate(choice.centres)}
    kept = {i: previous.names[i] for i in ids.matched} if previous is not None else {}
    fresh = name_clusters(
        {i: c for i, c in centroids.items() if i not in kept}, fit.population, taken=kept.values()
    )
    model = ClusterModel(
        version=0,
        snapshot_date=snapshot_date,
        algorithm=algorithm,
        k=len(choice.centres),
        seed=seed,
        silhouette=choice.silhouette,
        features=FEATURES,
        centroids=dict(sorted(centroids.items())),
        names=dict(sorted({**kept, **fresh}.items())),
        id_map=dict(sorted(ids.id_map.items())),
        scale=scale,
        population=fit.population,
        sample_rows=fit.sample_rows,
        next_id=ids.next_id,
        previous_version=previous.version if previous is not None else None,
        pipeline=choice.pipeline,
    )
    return model, ids


def train(
    features: DataFrame,
    *,
    snapshot_date: dt.date,
    k: int | None = None,
    k_min: int = 3,
    k_max: int = 8,
    sample_fraction: float = 1.0,
    max_sample_rows: int = 200_000,
    seed: int = 42,
    algorithm: str = "kmeans",
    max_iter: int | None = None,
    n_init: int = 5,
    previous: ClusterModel | None = None,
    max_match_distance: float | None = MATCH_MAX_DISTANCE,
) -> TrainResult:
    """Fit the clustering pipeline on a sample of one snapshot's features.

    With ``k`` one model is fitted; otherwise every k in ``k_min..k_max`` is fitted on the same
    sample and the one with the highest silhouette wins (ties: the smaller k).

    Args:
        features: One row per customer with ``recency_days``, ``frequency`` and ``monetary``
            (the output of :func:`rfm_spark.features.rfm_features`); other columns are ignored.
        snapshot_date: The snapshot the features describe (recorded in the model).
        k: Number of clusters, or None to choose it in ``k_min..k_max``.
        k_min: Smallest k tried.
        k_max: Largest k tried.
        sample_fraction: Fraction of customers to train on.
        max_sample_rows: Cap on the sample (the fraction is lowered to stay about under it), so
            training cost does not grow with the customer base.
        seed: Seed of the sample and of the algorithm.
        algorithm: ``kmeans``, ``bisecting_kmeans`` or ``gaussian_mixture``.
        max_iter: Iterations of the algorithm (MLlib's default when None).
        n_init: Fits per k with seeds ``seed``, ``seed + 1``, ...; the lowest cost (highest
            log-likelihood for a Gaussian mixture) is kept.
        previous: The model in use; its cluster ids and names are kept for matching clusters.
        max_match_distance: Largest centroid distance (standard deviations of the log
            features) still counted as the same cluster; None matches as many as possible.

    Returns:
        The model (not yet saved), the score of every k tried and why the k was chosen.

    Raises:
        MissingColumnsError: A feature column is missing.
        ConfigError: Bad k, k range, algorithm or sample settings.
        ModelError: No customers, or no k gave at least two clusters.
    """
    ks = _check_train_args(features, algorithm, k, k_min, k_max, sample_fraction, max_sample_rows)
    _check_previous(previous)
    data = features.select(*FEATURES)
    customers = data.count()
    if customers == 0:
        raise ModelError(f"no customers to train on for snapshot {snapshot_date}")
    sample = _sample(data, customers, sample_fraction, max_sample_rows, seed).cache()
    try:
        fit = _fit_sample(
            sample, ks, algorithm=algorithm, seed=seed, max_iter=max_iter, n_init=n_init
        )
    finally:
        sample.unpersist()
    model, ids = _build_model(
        fit,
        snapshot_date=snapshot_date,
        algorithm=algorithm,
        seed=seed,
        previous=previous,
        max_match_distance=max_match_distance,
    )
    return TrainResult(
        model=model,
        scores=fit.scores,
        reason=reason(
            fit.scores, fit.best.k, fit.best.silhouette, fit.sample_rows, customers, k is not None
        ),
        customers=customers,
        matched=ids.matched,
        appeared=ids.appeared,
        vanished=ids.vanished,
    )
