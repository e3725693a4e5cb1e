"""Predictive segments: clusters of customers in log-RFM space (design.md section 6).

An MLlib :class:`~pyspark.ml.Pipeline` of

1. ``SQLTransformer``: ``log1p`` of ``recency_days``, ``frequency`` and ``monetary`` (monetary
   clipped at 0 first, returns can make it negative; nulls count as 0 so that every customer
   gets a cluster),
2. ``VectorAssembler`` and ``StandardScaler`` (unit variance, not centred: bisecting k-means
   perturbs a centre in proportion to its norm to split it, so it cannot split data centred on
   the origin),
3. ``KMeans``, ``BisectingKMeans`` or ``GaussianMixture`` with a fixed seed,

fitted on a sample of one snapshot's features. MLlib numbers clusters arbitrarily, so the model
maps each raw prediction to a *stable* cluster id: a retrain matches its centroids to the
previous model's (Hungarian assignment on centroid distance in scaled log space) so that ids
and names keep their meaning; clusters that appear get fresh ids, vanished ones are reported.

Models live under ``WAREHOUSE/models/rfm_clusters/``: ``v{N}/pipeline`` (MLlib format),
``v{N}/metadata.json`` and ``CURRENT`` (the version in use). Files are written through Hadoop's
``FileSystem``, so the warehouse can be a local path or any Hadoop URI.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScaler, StandardScalerModel, VectorAssembler
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark import __version__
from rfm_spark.errors import ConfigError, MissingColumnsError, RfmError
from rfm_spark.paths import join

__all__ = [
    "ALGORITHMS",
    "FEATURES",
    "MODELS_DIR",
    "PROFILE_COLUMNS",
    "ClusterModel",
    "KScore",
    "ModelError",
    "TrainResult",
    "assign_clusters",
    "cluster_profiles",
    "format_scores",
    "load_model",
    "match_clusters",
    "name_clusters",
    "save_model",
    "train",
]

FEATURES: tuple[str, ...] = ("recency_days", "frequency", "monetary")
ALGORITHMS: tuple[str, ...] = ("kmeans", "bisecting_kmeans", "gaussian_mixture")
MODELS_DIR = "models/rfm_clusters"
METADATA_FORMAT = 1
# A new centroid farther than this from its Hungarian partner (in standard deviations of the
# log features) is a new cluster, not a moved one. On the demo personas a retrain moves a
# centroid by at most ~0.4 while distinct clusters are at least ~1.4 apart.
MATCH_MAX_DISTANCE = 1.0
PROFILE_COLUMNS: tuple[str, ...] = (
    "cluster_id",
    "cluster_name",
    "customers",
    "revenue_share",
    "mean_recency_days",
    "mean_frequency",
    "mean_monetary",
    "model_version",
)

_ROWS_PER_TRAINING_PARTITION = 50_000
_P = "_rfm_cluster_"  # prefix of the pipeline's intermediate columns
_LOG_COLS = tuple(f"{_P}log_{f}" for f in FEATURES)
_VECTOR = f"{_P}vector"
_SCALED = f"{_P}scaled"
_RAW = f"{_P}raw"
_PROBABILITY = f"{_P}probability"


class ModelError(RfmError):
    """A cluster model cannot be trained, saved or loaded as asked."""


@dataclass(frozen=True)
class KScore:
    """Quality of one candidate k on the training sample.

    Attributes:
        k: Clusters asked for.
        silhouette: Mean silhouette (squared Euclidean, scaled log space); NaN when the model
            found fewer than two clusters.
        cost: Within-cluster sum of squared distances (k-means, bisecting k-means); None for a
            Gaussian mixture.
    """

    k: int
    silhouette: float
    cost: float | None


@dataclass(frozen=True)
class ClusterModel:
    """A trained (and possibly saved) cluster model.

    Attributes:
        version: Model version under the warehouse; 0 until saved.
        snapshot_date: Snapshot whose features trained it.
        algorithm: One of :data:`ALGORITHMS`.
        k: Number of clusters the model has.
        seed: Random seed of sampling and training.
        silhouette: Silhouette on the training sample.
        features: Feature columns, in vector order.
        centroids: Stable cluster id -> feature -> centroid in original units (``expm1`` of the
            centre in log space: a typical member, not the arithmetic mean).
        names: Stable cluster id -> readable name.
        id_map: Raw MLlib prediction -> stable cluster id.
        scale: Standard deviation of each log feature on the training sample.
        population: Feature -> median on the training sample (monetary clipped at 0).
        sample_rows: Customers in the training sample.
        next_id: First cluster id never used by this model or its predecessors.
        previous_version: Version of the model whose ids this one kept, if any.
        path: Model directory (``.../v{N}``); empty until saved.
        pipeline: The fitted MLlib pipeline (not part of the metadata file).
    """

    version: int
    snapshot_date: dt.date
    algorithm: str
    k: int
    seed: int
    silhouette: float
    features: tuple[str, ...]
    centroids: dict[int, dict[str, float]]
    names: dict[int, str]
    id_map: dict[int, int]
    scale: tuple[float, ...]
    population: dict[str, float]
    sample_rows: int
    next_id: int
    previous_version: int | None = None
    path: str = ""
    pipeline: PipelineModel | None = field(default=None, compare=False, repr=False)

    def scaled_centroids(self, scale: Sequence[float] | None = None) -> dict[int, list[float]]:
        """Centroids in log space divided by ``scale`` (this model's own by default)."""
        scale = tuple(scale) if scale is not None else self.scale
        return {
            cid: [math.log1p(max(c[f], 0.0)) / s for f, s in zip(self.features, scale, strict=True)]
            for cid, c in self.centroids.items()
        }

    def metadata(self) -> dict[str, Any]:
        """The content of ``metadata.json`` (JSON-ready)."""
        return {
            "format": METADATA_FORMAT,
            "model_version": self.version,
            "snapshot_date": self.snapshot_date.isoformat(),
            "algorithm": self.algorithm,
            "k": self.k,
            "seed": self.seed,
            "silhouette": _json_float(self.silhouette),
            "features": list(self.features),
            "transform": "log1p (monetary clipped at 0, nulls as 0), scaled to unit variance",
            "centroids": {str(i): dict(c) for i, c in sorted(self.centroids.items())},
            "names": {str(i): n for i, n in sorted(self.names.items())},
            "id_map": {str(r): i for r, i in sorted(self.id_map.items())},
            "scale": dict(zip(self.features, self.scale, strict=True)),
            "population_medians": dict(self.population),
            "sample_rows": self.sample_rows,
            "next_id": self.next_id,
            "previous_version": self.previous_version,
        }


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes:
        model: The chosen model (unsaved: ``version`` 0).
        scores: Silhouette and cost of every k tried, in order of k.
        reason: One sentence on why this k.
        customers: Customers in the features.
        matched: Stable id kept from the previous model -> distance between the old and the new
            centroid (standard deviations of the log features).
        appeared: Stable ids that are new in this model.
        vanished: Stable ids of the previous model with no counterpart in this one.
    """

    model: ClusterModel
    scores: list[KScore]
    reason: str
    customers: int
    matched: dict[int, float] = field(default_factory=dict)
    appeared: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _log_statement() -> str:
    """SQL of the log-transform stage: ``log1p(greatest(coalesce(x, 0), 0))`` per feature."""
    exprs = ", ".join(
        f"log1p(greatest(coalesce(CAST(`{f}` AS DOUBLE), 0D), 0D)) AS `{c}`"
        for f, c in zip(FEATURES, _LOG_COLS, strict=True)
    )
    return f"SELECT *, {exprs} FROM __THIS__"


def _estimator(algorithm: str, k: int, seed: int, max_iter: int | None) -> Any:
    common: dict[str, Any] = {"k": k, "seed": seed, "featuresCol": _SCALED, "predictionCol": _RAW}
    if max_iter is not None:
        common["maxIter"] = max_iter
    if algorithm == "kmeans":
        return KMeans(**common)
    if algorithm == "bisecting_kmeans":
        return BisectingKMeans(**common)
    return GaussianMixture(probabilityCol=_PROBABILITY, **common)


def _preparation() -> Pipeline:
    """Log transform, vector and scaling: the stages before the clustering algorithm."""
    return Pipeline(
        stages=[
            SQLTransformer(statement=_log_statement()),
            VectorAssembler(inputCols=list(_LOG_COLS), outputCol=_VECTOR),
            StandardScaler(inputCol=_VECTOR, outputCol=_SCALED, withMean=False, withStd=True),
        ]
    )


def _fit_best(
    scaled: DataFrame, algorithm: str, k: int, seed: int, max_iter: int | None, n_init: int
) -> Any:
    """The best of ``n_init`` fits (seeds ``seed``, ``seed + 1``, ...): lowest cost, or highest
    log-likelihood for a Gaussian mixture. One k-means run lands in a poor local optimum often
    enough (about half the seeds on the demo personas) that a single fit is not stable."""
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


def _centres(fitted: PipelineModel) -> list[list[float]]:
    """Cluster centres in scaled log space, indexed by raw prediction."""
    last: Any = fitted.stages[-1]
    if isinstance(last, GaussianMixtureModel):
        return [[float(x) for x in g.mean.toArray()] for g in last.gaussians]
    if isinstance(last, (KMeansModel, BisectingKMeansModel)):
        return [[float(x) for x in c] for c in last.clusterCenters()]
    raise ModelError(f"unexpected last pipeline stage {type(last).__name__}")  # pragma: no cover


def _cost(fitted: PipelineModel) -> float | None:
    last = fitted.stages[-1]
    if isinstance(last, (KMeansModel, BisectingKMeansModel)):
        return float(last.summary.trainingCost)
    return None


def _scale(fitted: PipelineModel) -> tuple[float, ...]:
    scaler = fitted.stages[2]
    assert isinstance(scaler, StandardScalerModel)
    # a constant feature has std 0 and the scaler maps it to 0; keep the inverse finite
    return tuple(float(s) if s > 0 else 1.0 for s in scaler.std.toArray())


def _silhouette(predictions: DataFrame, clusters: int) -> float:
    if clusters < 2:
        return math.nan
    evaluator = ClusteringEvaluator(
        featuresCol=_SCALED,
        predictionCol=_RAW,
        metricName="silhouette",
        distanceMeasure="squaredEuclidean",
    )
    return float(evaluator.evaluate(predictions))


def _check_train_args(
    features: DataFrame,
    algorithm: str,
    k: int | None,
    k_min: int,
    k_max: int,
    sample_fraction: float,
    max_sample_rows: int,
) -> list[int]:
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


def _natural_order(centres: Sequence[Sequence[float]]) -> list[int]:
    """Raw indices from the highest to the lowest spending centre (then most recent first)."""
    r, m = FEATURES.index("recency_days"), FEATURES.index("monetary")
    return sorted(range(len(centres)), key=lambda i: (-centres[i][m], centres[i][r], i))


def _original_units(centre: Sequence[float], scale: Sequence[float]) -> dict[str, float]:
    return {f: round(math.expm1(c * s), 4) for f, c, s in zip(FEATURES, centre, scale, strict=True)}


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
    if previous is not None and tuple(previous.features) != FEATURES:
        raise ModelError(
            f"the previous model (version {previous.version}) uses features "
            f"{', '.join(previous.features)}, this one {', '.join(FEATURES)}; "
            "train without the previous model"
        )
    data = features.select(*FEATURES)
    customers = data.count()
    if customers == 0:
        raise ModelError(f"no customers to train on for snapshot {snapshot_date}")
    fraction = min(sample_fraction, max_sample_rows / customers)
    sample = (
        data.sample(withReplacement=False, fraction=fraction, seed=seed) if fraction < 1 else data
    )
    sample = sample.cache()
    try:
        sample_rows = sample.count()
        if sample_rows < max(ks):
            raise ModelError(
                f"the training sample has {sample_rows} customer(s), fewer than k={max(ks)}; "
                "raise the sample fraction or lower k"
            )
        prep = _preparation().fit(sample)
        # The sample is small by design; spread over many partitions, MLlib's per-iteration
        # jobs would cost more in task overhead than in computation.
        partitions = max(
            1,
            min(
                features.sparkSession.sparkContext.defaultParallelism,
                math.ceil(sample_rows / _ROWS_PER_TRAINING_PARTITION),
            ),
        )
        scaled = prep.transform(sample).select(_SCALED).coalesce(partitions).cache()
        best: tuple[float, int, PipelineModel, list[list[float]]] | None = None
        scores: list[KScore] = []
        try:
            for kk in ks:
                last = _fit_best(scaled, algorithm, kk, seed, max_iter, n_init)
                fitted = PipelineModel(stages=[*prep.stages, last])
                used = sum(1 for size in last.summary.clusterSizes if size > 0)
                score = KScore(kk, _silhouette(last.transform(scaled), used), _cost(fitted))
                scores.append(score)
                if not math.isnan(score.silhouette) and (
                    best is None or score.silhouette > best[0]
                ):
                    best = (score.silhouette, kk, fitted, _centres(fitted))
        finally:
            scaled.unpersist()
        population = _population(sample)
    finally:
        sample.unpersist()
    if best is None:
        raise ModelError(
            f"no k in {ks[0]}..{ks[-1]} split the {sample_rows} sampled customers into two or "
            "more clusters; the features may be (nearly) constant"
        )
    silhouette, chosen_k, fitted, centres = best
    scale = _scale(fitted)
    ids = _stable_ids(centres, scale, previous, max_match_distance)
    centroids = {ids.id_map[raw]: _original_units(c, scale) for raw, c in enumerate(centres)}
    kept = {i: previous.names[i] for i in ids.matched} if previous is not None else {}
    fresh = name_clusters(
        {i: c for i, c in centroids.items() if i not in kept}, population, taken=kept.values()
    )
    model = ClusterModel(
        version=0,
        snapshot_date=snapshot_date,
        algorithm=algorithm,
        k=len(centres),
        seed=seed,
        silhouette=silhouette,
        features=FEATURES,
        centroids=dict(sorted(centroids.items())),
        names=dict(sorted({**kept, **fresh}.items())),
        id_map=dict(sorted(ids.id_map.items())),
        scale=scale,
        population=population,
        sample_rows=sample_rows,
        next_id=ids.next_id,
        previous_version=previous.version if previous is not None else None,
        pipeline=fitted,
    )
    return TrainResult(
        model=model,
        scores=scores,
        reason=_reason(scores, chosen_k, silhouette, sample_rows, customers, k is not None),
        customers=customers,
        matched=ids.matched,
        appeared=ids.appeared,
        vanished=ids.vanished,
    )


@dataclass(frozen=True)
class _Ids:
    id_map: dict[int, int]
    next_id: int
    matched: dict[int, float]
    appeared: list[int]
    vanished: list[int]


def _stable_ids(
    centres: Sequence[Sequence[float]],
    scale: Sequence[float],
    previous: ClusterModel | None,
    max_distance: float | None,
) -> _Ids:
    """Stable ids of the raw clusters (centres in scaled log space).

    Without a previous model: 1, 2, ... from the highest to the lowest spending centre. With
    one: the previous model's centroids are put in the same space (log features divided by
    the new ``scale``) and matched with :func:`match_clusters`; ``matched`` holds the distance
    of each kept id's old and new centroid.
    """
    order = _natural_order(centres)
    if previous is None:
        return _Ids({raw: i + 1 for i, raw in enumerate(order)}, len(order) + 1, {}, [], [])
    old = previous.scaled_centroids(scale)
    id_map = match_clusters(
        {raw: centres[raw] for raw in order},
        old,
        max_distance=max_distance,
        first_free_id=previous.next_id,
    )
    matched = {
        i: round(_distance(centres[raw], old[i]), 4) for raw, i in id_map.items() if i in old
    }
    return _Ids(
        id_map=id_map,
        next_id=max([previous.next_id, *[i + 1 for i in id_map.values()]]),
        matched=dict(sorted(matched.items())),
        appeared=sorted(i for i in id_map.values() if i not in old),
        vanished=sorted(i for i in old if i not in id_map.values()),
    )


def _population(sample: DataFrame) -> dict[str, float]:
    """Median of each feature (monetary clipped at 0) on the training sample."""
    cols = [f"{_P}q_{f}" for f in FEATURES]
    clipped = sample.select(
        *[
            F.greatest(F.coalesce(F.col(f).cast("double"), F.lit(0.0)), F.lit(0.0)).alias(c)
            for f, c in zip(FEATURES, cols, strict=True)
        ]
    )
    qs = clipped.approxQuantile(cols, [0.5], 0.001)
    return {f: float(q[0]) for f, q in zip(FEATURES, qs, strict=True)}


def _reason(
    scores: Sequence[KScore],
    k: int,
    silhouette: float,
    sample_rows: int,
    customers: int,
    given: bool,
) -> str:
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


def format_scores(scores: Sequence[KScore], chosen: int | None = None) -> str:
    """A plain-text table of k, silhouette and cost, the chosen k marked with ``*``."""
    lines = [f"{'k':>3}  {'silhouette':>10}  {'cost':>14}"]
    for s in scores:
        sil = "n/a" if math.isnan(s.silhouette) else f"{s.silhouette:.4f}"
        cost = "n/a" if s.cost is None else f"{s.cost:,.2f}"
        mark = "  *" if s.k == chosen else ""
        lines.append(f"{s.k:>3}  {sil:>10}  {cost:>14}{mark}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Stable ids and names
# --------------------------------------------------------------------------------------------


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def match_clusters(
    new: Mapping[int, Sequence[float]],
    old: Mapping[int, Sequence[float]],
    *,
    max_distance: float | None = None,
    first_free_id: int | None = None,
) -> dict[int, int]:
    """Give the new clusters the ids of the old clusters they correspond to.

    The pairing minimises the total Euclidean distance between paired centroids (Hungarian
    assignment, ``scipy.optimize.linear_sum_assignment``); both sides must be in the same space
    (e.g. log features divided by one common scale). A pair farther apart than
    ``max_distance`` is not a match. New clusters without a match get fresh ids from
    ``first_free_id`` (default ``max(old) + 1``) upwards, in the iteration order of ``new``.

    Args:
        new: New cluster key (e.g. raw MLlib prediction) -> centroid.
        old: Old stable id -> centroid.
        max_distance: Largest distance of a match; None accepts every pairing.
        first_free_id: First id that may be handed out to an unmatched new cluster.

    Returns:
        New cluster key -> stable id; old ids absent from the values vanished.
    """
    from scipy.optimize import linear_sum_assignment

    new_keys, old_keys = list(new), list(old)
    out: dict[int, int] = {}
    if new_keys and old_keys:
        cost = [[_distance(new[n], old[o]) for o in old_keys] for n in new_keys]
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if max_distance is None or cost[r][c] <= max_distance:
                out[new_keys[r]] = old_keys[c]
    free = max(first_free_id or 0, max(old_keys, default=0) + 1)
    for key in new_keys:
        if key not in out:
            out[key] = free
            free += 1
    return {key: out[key] for key in new_keys}


# Thresholds of the names, as ratios of (1 + centroid) to (1 + population median).
_ACTIVE, _LAPSED = 0.75, 2.0  # recency at most 3/4 of the median is active, over 2x lapsed
_LOW, _HIGH = 0.5, 2.0  # frequency / spend under half the median is low, over twice high
_SMALL_BASKET = 0.5  # spend per order under half the population's is a small spender
_ONE_TIME = 2.0  # a centroid under two orders is a one-time (or first-time) buyer


def _ratio(value: float, median: float) -> float:
    return (1.0 + max(value, 0.0)) / (1.0 + max(median, 0.0))


def _name(centroid: Mapping[str, float], population: Mapping[str, float]) -> str:
    frequency, monetary = centroid["frequency"], centroid["monetary"]
    r_ratio, f_ratio, m_ratio = (_ratio(centroid[f], population[f]) for f in FEATURES)
    r = "active" if r_ratio <= _ACTIVE else ("lapsed" if r_ratio > _LAPSED else "cooling")
    m = "low" if m_ratio < _LOW else ("big" if m_ratio > _HIGH else "mid")
    f = "occasional" if f_ratio < _LOW else ("frequent" if f_ratio > _HIGH else "regular")
    if frequency < _ONE_TIME:
        return "recent first-time buyers" if r == "active" else f"one-time {m} spenders"
    if r == "lapsed":
        return f"lapsed {m} spenders"
    if m == "big" and f != "occasional":
        return f"high value, {r}"
    basket = _ratio(monetary / frequency, population["monetary"] / max(population["frequency"], 1))
    if f == "frequent" and basket < _SMALL_BASKET:
        return f"frequent small spenders, {r}"
    return f"{f} {m} spenders, {r}"


def name_clusters(
    centroids: Mapping[int, Mapping[str, float]],
    population: Mapping[str, float],
    *,
    taken: Iterable[str] = (),
) -> dict[int, str]:
    """Readable, unique names from each centroid relative to the population's medians.

    Each feature is compared with the population median (as ``(1 + x) / (1 + median)``):
    recency up to 3/4 of the median is "active", over twice the median "lapsed", between
    "cooling"; frequency and spend under half the median are "occasional" / "low", over twice
    "frequent" / "big". A centroid under two orders is a one-time buyer ("recent first-time
    buyers" when active); big spenders who are not occasional buyers are "high value"; frequent
    buyers whose spend per order is under half the population's are "frequent small spenders".
    Examples: "high value, active", "lapsed big spenders",
    "one-time low spenders", "occasional mid spenders, cooling". Colliding names get " (2)",
    " (3)" ... in order of id.

    Args:
        centroids: Cluster id -> feature -> centroid in original units.
        population: Feature -> median over the customers.
        taken: Names already used (kept from a previous model); new names avoid them.

    Returns:
        Cluster id -> name.
    """
    used = set(taken)
    out: dict[int, str] = {}
    for cid in sorted(centroids):
        base = _name(centroids[cid], population)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base} ({n})"
        used.add(name)
        out[cid] = name
    return out


# --------------------------------------------------------------------------------------------
# Assignment and profiles
# --------------------------------------------------------------------------------------------


def _literal_map(pairs: Mapping[int, Any], value_type: str) -> Any:
    items = sorted(pairs.items())
    return F.create_map(
        *[x for key, value in items for x in (F.lit(key), F.lit(value).cast(value_type))]
    )


def assign_clusters(df: DataFrame, model: ClusterModel | None) -> DataFrame:
    """Add each customer's stable cluster id and name.

    A narrow transformation: no row is dropped or duplicated, and nulls in the features count
    as 0. Existing ``cluster_id`` / ``cluster_name`` columns are replaced.

    Args:
        df: Rows with ``recency_days``, ``frequency`` and ``monetary`` (any other columns are
            kept).
        model: The model to apply, or None (no model yet: both columns are null).

    Returns:
        ``df``'s columns (without old ``cluster_id`` / ``cluster_name``) plus ``cluster_id``
        (int) and ``cluster_name`` (string).

    Raises:
        MissingColumnsError: A feature column is missing (only checked with a model).
        ModelError: The model has no fitted pipeline.
    """
    base = df.drop("cluster_id", "cluster_name")
    # exact names: a column called "a.b" or holding a backtick is kept as it is
    keep = [F.col("`" + c.replace("`", "``") + "`") for c in base.columns]
    if model is None:
        return base.select(
            *keep,
            F.lit(None).cast("int").alias("cluster_id"),
            F.lit(None).cast("string").alias("cluster_name"),
        )
    missing = [f for f in model.features if f not in base.columns]
    if missing:
        raise MissingColumnsError("the rows to assign clusters to", missing, base.columns)
    if model.pipeline is None:
        raise ModelError(f"cluster model version {model.version} has no fitted pipeline")
    stable = _literal_map(model.id_map, "int")[F.col(_RAW).cast("int")]
    names = _literal_map(model.names, "string")
    return (
        model.pipeline.transform(base)
        .select(*keep, stable.alias("cluster_id"))
        .withColumn("cluster_name", names[F.col("cluster_id")])
    )


def cluster_profiles(assigned: DataFrame, model: ClusterModel) -> DataFrame:
    """Size, revenue share and mean features of every cluster of ``model``.

    Every cluster of the model has a row, with 0 customers when none is assigned to it; rows
    without a cluster are counted in the revenue total only.

    Args:
        assigned: Output of :func:`assign_clusters` (``cluster_id``, ``recency_days``,
            ``frequency``, ``monetary``).
        model: The model that assigned the clusters.

    Returns:
        ``cluster_id`` (int), ``cluster_name`` (string), ``customers`` (bigint),
        ``revenue_share`` (double, cluster's net spend over everyone's), ``mean_recency_days``,
        ``mean_frequency``, ``mean_monetary`` (double, null for an empty cluster) and
        ``model_version`` (string, the partition of the ``cluster_profiles`` table).
    """
    spark = assigned.sparkSession
    clusters = spark.createDataFrame(
        [(i, model.names[i]) for i in sorted(model.centroids)],
        T.StructType(
            [
                T.StructField("cluster_id", T.IntegerType()),
                T.StructField("cluster_name", T.StringType()),
            ]
        ),
    )
    monetary = F.col("monetary").cast("double")
    stats = assigned.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum(monetary).alias("_revenue"),
        F.avg(F.col("recency_days").cast("double")).alias("mean_recency_days"),
        F.avg(F.col("frequency").cast("double")).alias("mean_frequency"),
        F.avg(monetary).alias("mean_monetary"),
    )
    # a handful of rows: the whole-table window is cheap here
    total = F.sum("_revenue").over(Window.partitionBy(F.lit(0)))
    with_share = stats.withColumn(
        "revenue_share", F.when(total != 0, F.col("_revenue") / total).otherwise(F.lit(0.0))
    )
    return (
        clusters.join(with_share, on="cluster_id", how="left")
        .select(
            F.col("cluster_id").cast("int").alias("cluster_id"),
            F.col("cluster_name").cast("string").alias("cluster_name"),
            F.coalesce(F.col("customers"), F.lit(0)).cast("bigint").alias("customers"),
            F.coalesce(F.col("revenue_share"), F.lit(0.0)).cast("double").alias("revenue_share"),
            F.col("mean_recency_days").cast("double").alias("mean_recency_days"),
            F.col("mean_frequency").cast("double").alias("mean_frequency"),
            F.col("mean_monetary").cast("double").alias("mean_monetary"),
            F.lit(str(model.version)).cast("string").alias("model_version"),
        )
        .orderBy("cluster_id")
    )


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------


class _Files:
    """Small text files through Hadoop's FileSystem (local paths and any Hadoop URI)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.jvm: Any = spark.sparkContext._jvm
        self.conf: Any = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str) -> tuple[Any, Any]:
        p = self.jvm.org.apache.hadoop.fs.Path(path)
        fs = p.getFileSystem(self.conf)
        if self.jvm.org.apache.hadoop.fs.LocalFileSystem._java_lang_class.isInstance(fs):
            fs = fs.getRawFileSystem()  # no .crc side files next to ours
        return fs, p

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def read(self, path: str) -> str:
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            return str(self.jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write(self, path: str, text: str) -> None:
        """Write ``text``, replacing the file as one rename where the filesystem allows it."""
        fs, p = self._fs(path)
        tmp = self.jvm.org.apache.hadoop.fs.Path(path + ".tmp")
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        if not fs.rename(tmp, p):
            fs.delete(p, False)
            if not fs.rename(tmp, p):
                raise ModelError(f"could not write {path}")

    def versions(self, root: str) -> list[int]:
        fs, p = self._fs(root)
        if not fs.exists(p):
            return []
        out = []
        for status in fs.listStatus(p):
            name = str(status.getPath().getName())
            if status.isDirectory() and name.startswith("v") and name[1:].isdigit():
                out.append(int(name[1:]))
        return sorted(out)


def _root(warehouse: str) -> str:
    return join(warehouse, MODELS_DIR)


def save_model(
    result_or_model: TrainResult | ClusterModel,
    warehouse: str,
    *,
    spark: SparkSession | None = None,
) -> ClusterModel:
    """Save a model as the next version and make it the current one.

    Writes ``WAREHOUSE/models/rfm_clusters/v{N}/pipeline`` (MLlib format) and
    ``v{N}/metadata.json`` (everything in :meth:`ClusterModel.metadata`, plus the k scores and
    the reason when given a :class:`TrainResult`), then points ``CURRENT`` at ``N``.
    ``N`` is one more than the highest version present.

    Args:
        result_or_model: What :func:`train` returned, or its model.
        warehouse: Warehouse root.
        spark: Session for file access (the active one by default).

    Returns:
        The model with its ``version`` and ``path`` set.

    Raises:
        ModelError: The model has no pipeline, or the version folder appeared meanwhile.
    """
    result = result_or_model if isinstance(result_or_model, TrainResult) else None
    model = result.model if result is not None else result_or_model
    assert isinstance(model, ClusterModel)
    if model.pipeline is None:
        raise ModelError("the model has no fitted pipeline to save")
    files = _Files(spark or SparkSession.active())
    root = _root(warehouse)
    version = max(files.versions(root), default=0) + 1
    path = f"{root}/v{version}"
    saved = replace(model, version=version, path=path)
    try:
        model.pipeline.write().save(f"{path}/pipeline")
    except Exception as exc:
        raise ModelError(
            f"could not save the cluster model to {path}: {str(exc).strip().splitlines()[0]}; "
            "another train may have saved the same version, run it again"
        ) from exc
    meta = saved.metadata()
    meta["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta["rfm_spark_version"] = __version__
    if result is not None:
        meta["training"] = {
            "customers": result.customers,
            "scores": [
                {"k": s.k, "silhouette": _json_float(s.silhouette), "cost": s.cost}
                for s in result.scores
            ],
            "reason": result.reason,
            "matched": {str(i): d for i, d in result.matched.items()},
            "appeared": result.appeared,
            "vanished": result.vanished,
        }
    files.write(f"{path}/metadata.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    files.write(f"{root}/CURRENT", f"{version}\n")
    return saved


def load_model(
    spark: SparkSession, warehouse: str, version: int | None = None
) -> ClusterModel | None:
    """The current model (or ``version``) under the warehouse, or None when there is none.

    Args:
        spark: The session.
        warehouse: Warehouse root.
        version: A specific version; the one in ``CURRENT`` when None.

    Returns:
        The model with its pipeline, or None when no model was ever saved.

    Raises:
        ModelError: ``CURRENT`` or the metadata is unreadable, or ``version`` does not exist.
    """
    files = _Files(spark)
    root = _root(warehouse)
    if version is None:
        current = f"{root}/CURRENT"
        if not files.exists(current):
            return None
        text = files.read(current).strip()
        if not text.isdigit():
            raise ModelError(
                f"{current} should hold a model version number but holds {text[:40]!r}; "
                f"write the number of one of the folders v1, v2, ... in {root} into it"
            )
        version = int(text)
    path = f"{root}/v{version}"
    meta_path = f"{path}/metadata.json"
    if not files.exists(meta_path):
        have = ", ".join(f"v{v}" for v in files.versions(root)) or "none"
        raise ModelError(
            f"cluster model version {version} not found: no {meta_path} (versions: {have}); "
            "train a model or pick an existing version"
        )
    try:
        model = _from_metadata(json.loads(files.read(meta_path)), path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{meta_path} is not a valid cluster model metadata file ({type(exc).__name__}: "
            f"{exc}); retrain with 'rfm-spark train'"
        ) from exc
    try:
        pipeline = PipelineModel.load(f"{path}/pipeline")
    except Exception as exc:
        raise ModelError(
            f"cannot load the MLlib pipeline of cluster model version {version} from "
            f"{path}/pipeline: {str(exc).strip().splitlines()[0]}; retrain with 'rfm-spark train'"
        ) from exc
    return replace(model, pipeline=pipeline)


def _from_metadata(meta: Mapping[str, Any], path: str) -> ClusterModel:
    if meta.get("format") != METADATA_FORMAT:
        raise ValueError(f"unsupported format {meta.get('format')!r}, expected {METADATA_FORMAT}")
    features = tuple(str(f) for f in meta["features"])
    model = ClusterModel(
        version=int(meta["model_version"]),
        snapshot_date=dt.date.fromisoformat(meta["snapshot_date"]),
        algorithm=str(meta["algorithm"]),
        k=int(meta["k"]),
        seed=int(meta["seed"]),
        silhouette=float(meta["silhouette"]) if meta["silhouette"] is not None else math.nan,
        features=features,
        centroids={
            int(i): {f: float(c[f]) for f in features} for i, c in meta["centroids"].items()
        },
        names={int(i): str(n) for i, n in meta["names"].items()},
        id_map={int(r): int(i) for r, i in meta["id_map"].items()},
        scale=tuple(float(meta["scale"][f]) for f in features),
        population={f: float(meta["population_medians"][f]) for f in features},
        sample_rows=int(meta["sample_rows"]),
        next_id=int(meta["next_id"]),
        previous_version=(
            int(meta["previous_version"]) if meta.get("previous_version") is not None else None
        ),
        path=path,
    )
    if sorted(model.id_map.values()) != sorted(model.centroids) or set(model.names) != set(
        model.centroids
    ):
        raise ValueError("id_map, names and centroids do not list the same cluster ids")
    return model


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x
