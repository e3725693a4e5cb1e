"""The delta-rs fallback backend (no Delta jars needed)."""

from rfm_spark.io.deltars.store import DeltaRsStore

__all__ = ["DeltaRsStore"]
