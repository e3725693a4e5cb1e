"""Stable cluster ids across retrains.

MLlib numbers clusters arbitrarily, and a retrain may number the same customers' cluster
differently. So a model maps each raw prediction to a stable id: a first model numbers its
clusters from the highest to the lowest spender; a retrain matches its centroids to the previous
model's (Hungarian assignment on centroid distance in scaled log space) so that ids and names
keep their meaning, gives clusters that appear fresh ids and reports the ones that vanished.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rfm_spark.clustering.model import FEATURES, ClusterModel

# A new centroid farther than this from its Hungarian partner (in standard deviations of the
# log features) is a new cluster, not a moved one. On the demo personas a retrain moves a
# centroid by at most ~0.4 while distinct clusters are at least ~1.4 apart.
MATCH_MAX_DISTANCE = 1.0


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


@dataclass(frozen=True)
class StableIds:
    """The stable ids of a new model's raw clusters.

    Attributes:
        id_map: Raw MLlib prediction -> stable id.
        next_id: First id never used by this model or its predecessors.
        matched: Id kept from the previous model -> distance of its old and new centroid.
        appeared: Ids new in this model.
        vanished: Ids of the previous model with no counterpart.
    """

    id_map: dict[int, int]
    next_id: int
    matched: dict[int, float]
    appeared: list[int]
    vanished: list[int]


def _natural_order(centres: Sequence[Sequence[float]]) -> list[int]:
    """Raw indices from the highest to the lowest spending centre (then most recent first)."""
    r, m = FEATURES.index("recency_days"), FEATURES.index("monetary")
    return sorted(range(len(centres)), key=lambda i: (-centres[i][m], centres[i][r], i))


def stable_ids(
    centres: Sequence[Sequence[float]],
    scale: Sequence[float],
    previous: ClusterModel | None,
    max_distance: float | None,
) -> StableIds:
    """Stable ids of the raw clusters (centres in scaled log space).

    Without a previous model: 1, 2, ... from the highest to the lowest spending centre. With
    one: the previous model's centroids are put in the same space (log features divided by
    the new ``scale``) and matched with :func:`match_clusters`; ``matched`` holds the distance
    of each kept id's old and new centroid.
    """
    order = _natural_order(centres)
    if previous is None:
        return StableIds({raw: i + 1 for i, raw in enumerate(order)}, len(order) + 1, {}, [], [])
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
    return StableIds(
        id_map=id_map,
        next_id=max([previous.next_id, *[i + 1 for i in id_map.values()]]),
        matched=dict(sorted(matched.items())),
        appeared=sorted(i for i in id_map.values() if i not in old),
        vanished=sorted(i for i in old if i not in id_map.values()),
    )
