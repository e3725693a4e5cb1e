"""The runs that write the warehouse: ``segment``, ``backfill`` and ``train``.

Each run is its own module (:mod:`~rfm_spark.pipeline.segment`,
:mod:`~rfm_spark.pipeline.backfill`, :mod:`~rfm_spark.pipeline.train`); what they share (the
results, the run and its commit metadata, the input rows, the quarantine
write) has a module each. Callers import from here.
"""

from __future__ import annotations

from rfm_spark.pipeline.backfill import run_backfill, snapshot_dates
from rfm_spark.pipeline.results import (
    BackfillResult,
    Reconciliation,
    SegmentResult,
    SegmentSummaryRow,
    summarize,
)
from rfm_spark.pipeline.rows import valid_rows
from rfm_spark.pipeline.run import new_run_id
from rfm_spark.pipeline.segment import run_segment
from rfm_spark.pipeline.train import TrainRunResult, run_train

# the name the tests have used for reading a window's valid rows
_valid_rows = valid_rows

__all__ = [
    "BackfillResult",
    "Reconciliation",
    "SegmentResult",
    "SegmentSummaryRow",
    "TrainRunResult",
    "new_run_id",
    "run_backfill",
    "run_segment",
    "run_train",
    "snapshot_dates",
    "summarize",
    "valid_rows",
]
