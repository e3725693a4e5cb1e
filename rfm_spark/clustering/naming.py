"""Readable cluster names from centroids, relative to the population's medians.

Names describe a cluster the way a marketer would ("lapsed big spenders"), so that a cluster id
in a report needs no lookup. Comparing with the medians rather than with fixed amounts keeps
the names meaningful for any currency and purchase rhythm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rfm_spark.clustering.model import FEATURES

# Thresholds of the names, as ratios of (1 + centroid) to (1 + population median).
_ACTIVE, _LAPSED = 0.75, 2.0  # recency at most 3/4 of the median is active, over 2x lapsed
_LOW, _HIGH = 0.5, 2.0  # frequency / spend under half the median is low, over twice high
_SMALL_BASKET = 0.5  # spend per order under half the population's is a small spender
_ONE_TIME = 2.0  # a centroid under two orders is a one-time (or first-time) buyer


def _ratio(value: float, median: float) -> float:
    return (1.0 + max(value, 0.0)) / (1.0 + max(median, 0.0))


def _name(centroid: Mapping[str, float], population: Mapping[str, float]) -> str:
    """The name of one centroid, before collisions with other names are resolved."""
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
