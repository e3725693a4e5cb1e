"""The table store: one small interface over versioned, partitioned Delta tables.

Two backends implement :class:`TableStore`:

- ``spark`` (:class:`rfm_spark.io.spark_delta.SparkDeltaStore`), the default: the Delta Lake
  connector (``format("delta")``) writes, commits and time-travels.
- ``delta-rs`` (:class:`rfm_spark.io.deltars.DeltaRsStore`), the fallback for machines without
  the connector's jars: Spark writes Parquet, the driver commits with ``deltalake``.

Both store the commit metadata the same way: one JSON object of strings in the commit's
``userMetadata`` (visible in ``DESCRIBE HISTORY``), plus a reserved key ``rfm_write_id`` that
lets the writer find its own commit; :meth:`TableStore.history` strips that key again.

Time travel by timestamp means: the newest version whose commit timestamp, as reported by
``history()``, is at or before the given instant (naive datetimes are UTC). An instant before the
first commit is an error, never version 0.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pyspark.sql import DataFrame, SparkSession

from rfm_spark.errors import TableError
from rfm_spark.io.commits import TXN_KEY, Commit, Txn
from rfm_spark.session import has_delta_extension

log = logging.getLogger(__name__)

BACKENDS = ("spark", "delta-rs")


@runtime_checkable
class TableStore(Protocol):
    """Read and write partitioned, versioned Delta tables.

    Attributes:
        backend: ``"spark"`` or ``"delta-rs"``.
    """

    backend: str

    def exists(self, path: str) -> bool:
        """True when a Delta table exists at ``path``."""
        ...

    def version(self, path: str) -> int:
        """Latest version of the table at ``path``; :class:`TableError` when there is none."""
        ...

    def write_partition(
        self,
        df: DataFrame,
        path: str,
        *,
        partition_column: str,
        partition_value: datetime.date | str,
        metadata: Mapping[str, str] | None = None,
        table_properties: Mapping[str, str] | None = None,
        txn: Txn | None = None,
    ) -> int:
        """Replace the rows of one partition with ``df`` in one commit; return its version."""
        ...

    def write_partitions(
        self,
        df: DataFrame,
        path: str,
        *,
        partition_column: str,
        partition_values: Sequence[datetime.date | str],
        metadata: Mapping[str, str] | None = None,
        table_properties: Mapping[str, str] | None = None,
        txn: Txn | None = None,
    ) -> int:
        """Replace the rows of several partitions with ``df`` in one commit; return its version.

        With ``txn``, a write the table already holds is skipped and the earlier commit's
        version returned."""
        ...

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime.datetime | None = None,
    ) -> DataFrame:
        """The table as of ``version`` or ``timestamp`` (latest when neither is given)."""
        ...

    def history(self, path: str) -> list[dict[str, Any]]:
        """Commits newest first: ``version``, ``timestamp`` (UTC), ``operation``, ``metadata``."""
        ...

    def txn_version(self, path: str, txn: Txn) -> int | None:
        """The version that committed ``txn``; None when the table (or the commit) is absent."""
        ...

    def vacuum(self, path: str, *, retain_hours: int, dry_run: bool) -> list[str]:
        """Delete (or list) files no version within ``retain_hours`` references."""
        ...

    def optimize(self, path: str, *, zorder_by: Sequence[str] = ()) -> dict[str, int]:
        """Compact small files (Z-ordered by ``zorder_by``); ``files_added`` / ``files_removed``."""
        ...


def open_store(spark: SparkSession, backend: str = "auto") -> TableStore:
    """Return the table store for ``backend``.

    Args:
        spark: The session that reads and writes the data.
        backend: ``"auto"`` (native Delta when the session has the Delta extension, else
            delta-rs), ``"spark"`` or ``"delta-rs"``.

    Returns:
        A :class:`SparkDeltaStore` or a :class:`DeltaRsStore`.

    Raises:
        TableError: Unknown backend, or ``"spark"`` on a session without the Delta jars.
    """
    if backend not in ("auto", *BACKENDS):
        raise TableError(
            f"Unknown table backend {backend!r}; expected one of: auto, spark, delta-rs."
        )
    if backend == "auto":
        backend = "spark" if has_delta_extension(spark) else "delta-rs"
    if backend == "spark":
        from rfm_spark.io.spark_delta import SparkDeltaStore

        return SparkDeltaStore(spark)
    from rfm_spark.io.deltars import DeltaRsStore

    return DeltaRsStore(spark)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class StoreBase:
    backend: str = ""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def write_partition(
        self,
        df: DataFrame,
        path: str,
        *,
        partition_column: str,
        partition_value: datetime.date | str,
        metadata: Mapping[str, str] | None = None,
        table_properties: Mapping[str, str] | None = None,
        txn: Txn | None = None,
    ) -> int:
        """Replace exactly the rows of ``partition_column == partition_value`` with ``df``.

        One atomic commit; the table is created (partitioned by ``partition_column``, with
        ``table_properties``) on the first write. Every row of ``df`` must carry
        ``partition_value`` in ``partition_column``; an empty ``df`` empties the partition.

        Args:
            df: The new rows, including ``partition_column``.
            path: Table root.
            partition_column: The table's partition column (e.g. ``snapshot_date``).
            partition_value: The partition to replace.
            metadata: Strings stored with the commit (returned by :meth:`history`).
            table_properties: ``delta.*`` properties applied when the table is created.
            txn: Make the write idempotent: skipped when the table already holds it.

        Returns:
            The committed table version (the earlier one, when ``txn`` was already committed).

        Raises:
            TableError: Bad arguments, schema mismatch (nothing committed) or an I/O failure.
            ConcurrentWriteError: Another writer changed the partition at the same time.
        """
        return self.write_partitions(
            df,
            path,
            partition_column=partition_column,
            partition_values=[partition_value],
            metadata=metadata,
            table_properties=table_properties,
            txn=txn,
        )

    def write_partitions(
        self,
        df: DataFrame,
        path: str,
        *,
        partition_column: str,
        partition_values: Sequence[datetime.date | str],
        metadata: Mapping[str, str] | None = None,
        table_properties: Mapping[str, str] | None = None,
        txn: Txn | None = None,
    ) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def exists(self, path: str) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def txn_version(self, path: str, txn: Txn) -> int | None:
        """The version whose commit carried ``txn`` (from the commit metadata); None if none."""
        if not self.exists(path):
            return None
        for commit in self._commits(path):
            if commit.metadata.get(TXN_KEY) == txn.key:
                return commit.version
        return None

    def committed_version(self, path: str, write_id: str, txn: Txn | None) -> int:
        """The version of this write's commit, or of the earlier commit of the same ``txn``."""
        for commit in self._commits(path):
            if commit.write_id == write_id:
                return commit.version
        found = self.txn_version(path, txn) if txn is not None else None
        if found is None:
            raise TableError(
                f"The commit of write {write_id} was not found in the history of {path}."
            )
        return found

    def _commits(self, path: str) -> list[Commit]:  # pragma: no cover - overridden
        raise NotImplementedError

    def history(self, path: str) -> list[dict[str, Any]]:
        """Commits of the table, newest first.

        Returns:
            One dict per commit: ``version`` (int), ``timestamp`` (aware UTC datetime),
            ``operation`` (str) and ``metadata`` (the strings given at write; ``{}`` if none).

        Raises:
            TableError: No table at ``path``.
        """
        return [c.as_dict() for c in self._commits(path)]
