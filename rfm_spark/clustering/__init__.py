"""Predictive segments: clusters of customers in log-RFM space.

An MLlib pipeline (log transform, scaling, then k-means, bisecting k-means or a Gaussian
mixture; :mod:`~rfm_spark.clustering.stages`) is fitted on a sample of one snapshot's features
(:mod:`~rfm_spark.clustering.train`), k chosen by silhouette
(:mod:`~rfm_spark.clustering.selection`). MLlib numbers clusters arbitrarily, so a model maps
each raw prediction to a stable id kept across retrains (:mod:`~rfm_spark.clustering.matching`)
and a readable name (:mod:`~rfm_spark.clustering.naming`). A model then assigns customers
(:mod:`~rfm_spark.clustering.assign`) and summarises its clusters
(:mod:`~rfm_spark.clustering.profiles`).

Models are saved and loaded by :mod:`rfm_spark.io.models` (I/O lives under ``rfm_spark.io``,
which may import this package, never the other way round).
"""

from __future__ import annotations

from rfm_spark.clustering.assign import assign_clusters
from rfm_spark.clustering.matching import MATCH_MAX_DISTANCE, match_clusters
from rfm_spark.clustering.model import (
    ALGORITHMS,
    FEATURES,
    METADATA_FORMAT,
    ClusterModel,
    KScore,
    TrainResult,
)
from rfm_spark.clustering.naming import name_clusters
from rfm_spark.clustering.profiles import PROFILE_COLUMNS, cluster_profiles
from rfm_spark.clustering.train import train
from rfm_spark.errors import ModelError

__all__ = [
    "ALGORITHMS",
    "FEATURES",
    "MATCH_MAX_DISTANCE",
    "METADATA_FORMAT",
    "PROFILE_COLUMNS",
    "ClusterModel",
    "KScore",
    "ModelError",
    "TrainResult",
    "assign_clusters",
    "cluster_profiles",
    "match_clusters",
    "name_clusters",
    "train",
]
