"""Transitions read from and kept in tables: the two snapshots compared (read from
``customer_segments``), and the ``segment_transitions`` table of matrices per as-of snapshot."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark import __version__
from rfm_spark.io.store import TableStore
from rfm_spark.paths import join
from rfm_spark.schemas import TRANSITIONS_PARTITION, TRANSITIONS_SCHEMA, TRANSITIONS_TABLE
from rfm_spark.transitions import (
    SnapshotPair,
    available_snapshots,
    check_by,
    resolve_pair,
    transition_pairs,
)


def transitions_table_path(warehouse: str, table: str = TRANSITIONS_TABLE) -> str:
    """``WAREHOUSE/segment_transitions`` (as ``Config.table_path`` builds table paths)."""
    return join(warehouse, table)


def materialize(
    store: TableStore,
    warehouse: str,
    matrix: DataFrame,
    pair: SnapshotPair,
    run_id: str,
    *,
    by: str = "segment",
    table: str = TRANSITIONS_TABLE,
) -> int:
    """Keep a transition matrix in the ``segment_transitions`` Delta table.

    The table is partitioned by ``as_of`` (the later snapshot). A partition holds one matrix
    per (``earlier_snapshot``, ``dimension``): writing one replaces only that matrix and keeps
    the others of the same ``as_of`` (e.g. the cluster matrix, or another ``--days``), in one
    commit.

    Args:
        store: A :class:`rfm_spark.io.store.TableStore`.
        warehouse: The warehouse folder; the table is ``WAREHOUSE/<table>``.
        matrix: ``from_segment``, ``to_segment``, ``customers``, ``share`` (from
            :func:`transition_matrix`; small, collected on the driver).
        pair: The compared snapshots.
        run_id: The run that computed the matrix.
        by: ``"segment"`` or ``"cluster"``; stored in the ``dimension`` column.
        table: Table name under the warehouse.

    Returns:
        The committed table version.

    Output columns: ``as_of`` (date, partition), ``earlier_snapshot`` (date), ``from_segment``,
    ``to_segment`` (string), ``customers`` (bigint), ``share`` (double), ``dimension``
    (``segment`` / ``cluster``), ``run_id`` (string).
    """
    check_by(by)
    path = transitions_table_path(warehouse, table)
    spark = matrix.sparkSession
    rows: list[tuple[Any, ...]] = [
        (
            pair.later,
            pair.earlier,
            r["from_segment"],
            r["to_segment"],
            int(r["customers"]),
            float(r["share"]),
            by,
            run_id,
        )
        for r in matrix.select("from_segment", "to_segment", "customers", "share").collect()
    ]
    if store.exists(path):
        # Collected first: the other matrices of this as_of are rewritten with the new one.
        same = (F.col("earlier_snapshot") == F.lit(pair.earlier)) & (
            F.col("dimension") == F.lit(by)
        )
        kept = (
            store.read(path)
            .filter((F.col(TRANSITIONS_PARTITION) == F.lit(pair.later)) & ~same)
            .select(*TRANSITIONS_SCHEMA.fieldNames())
            .collect()
        )
        rows.extend(tuple(r) for r in kept)
    df = spark.createDataFrame(rows, TRANSITIONS_SCHEMA)
    metadata = {
        "run_id": run_id,
        "as_of": pair.later.isoformat(),
        "earlier_snapshot": pair.earlier.isoformat(),
        "requested_earlier": pair.requested_earlier.isoformat(),
        "dimension": by,
        "rows": str(len(rows)),
        "rfm_spark_version": __version__,
    }
    return int(
        store.write_partition(
            df,
            path,
            partition_column=TRANSITIONS_PARTITION,
            partition_value=pair.later,
            metadata=metadata,
        )
    )


def load_pairs(
    store: TableStore,
    table_path: str,
    *,
    as_of: dt.date,
    days: int = 14,
    by: str = "segment",
    version: int | None = None,
    timestamp: dt.datetime | None = None,
) -> tuple[SnapshotPair, DataFrame]:
    """Read ``customer_segments``, pick the snapshots and join them.

    Args:
        store: A :class:`rfm_spark.io.store.TableStore`.
        table_path: The ``customer_segments`` table.
        as_of: The later snapshot.
        days: How far back the earlier snapshot is wanted.
        by: ``"segment"`` or ``"cluster"``.
        version: Read the table at this version (time travel); latest when None.
        timestamp: Or as of this instant (see ``TableStore.read``).

    Returns:
        The pair (print its ``note`` when set) and :func:`rfm_spark.transitions.transition_pairs` of it.

    Raises:
        TransitionUsageError: See :func:`resolve_pair` and :func:`rfm_spark.transitions.transition_pairs`.
        TableError: No table at ``table_path``, or a bad version / timestamp.
    """
    check_by(by)
    segments = store.read(table_path, version=version, timestamp=timestamp)
    pair = resolve_pair(available_snapshots(segments), as_of, days)
    return pair, transition_pairs(segments, pair, by=by)
