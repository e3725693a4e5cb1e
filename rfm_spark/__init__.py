"""rfm-spark: RFM customer segmentation on Apache Spark with versioned Delta Lake history."""

from __future__ import annotations

__version__ = "0.1.0"
