"""The cluster model and training result records, and the model's metadata format.

These are plain values: a :class:`ClusterModel` carries everything needed to assign stable
cluster ids and names besides the fitted MLlib pipeline, and converts to and from the JSON
document saved next to that pipeline. Keeping both directions of the conversion here, next to
the fields they describe, means a new field cannot be written without being read back; the
files themselves are handled by :mod:`rfm_spark.io.models`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml import PipelineModel

FEATURES: tuple[str, ...] = ("recency_days", "frequency", "monetary")
ALGORITHMS: tuple[str, ...] = ("kmeans", "bisecting_kmeans", "gaussian_mixture")
METADATA_FORMAT = 1


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
        """Centroids in log space divided by ``scale`` (this model's own by default).

        A retrain matches its centres against these, so both must be divided by the same
        (the new model's) scale to be comparable.
        """
        scale = tuple(scale) if scale is not None else self.scale
        return {
            cid: [math.log1p(max(c[f], 0.0)) / s for f, s in zip(self.features, scale, strict=True)]
            for cid, c in self.centroids.items()
        }

    def metadata(self) -> dict[str, Any]:
        """The content of ``metadata.json`` (JSON-ready); :meth:`from_metadata` reads it back."""
        return {
            "format": METADATA_FORMAT,
            "model_version": self.version,
            "snapshot_date": self.snapshot_date.isoformat(),
            "algorithm": self.algorithm,
            "k": self.k,
            "seed": self.seed,
            "silhouette": json_float(self.silhouette),
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

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], path: str) -> ClusterModel:
        """The model described by a ``metadata.json`` document, without its pipeline.

        Args:
            meta: The parsed document.
            path: The model directory it was read from.

        Raises:
            ValueError: Unsupported format, or ids that disagree between the maps.
            KeyError: A field is missing.
            TypeError: A field has the wrong shape.
        """
        if meta.get("format") != METADATA_FORMAT:
            raise ValueError(
                f"unsupported format {meta.get('format')!r}, expected {METADATA_FORMAT}"
            )
        features = tuple(str(f) for f in meta["features"])
        model = cls(
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


@dataclass(frozen=True)
class TrainResult:
    """What :func:`~rfm_spark.clustering.train` did.

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


def json_float(x: float) -> float | None:
    """``x``, or None for NaN: JSON has no NaN, and a null reads back as "no silhouette"."""
    return None if math.isnan(x) else x
