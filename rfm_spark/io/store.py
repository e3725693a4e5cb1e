"""The table store: partitioned, versioned Delta tables through the Delta Lake connector.

Every operation is a DataFrame read or write with Delta's options, or Delta SQL on a path
(``DESCRIBE HISTORY delta.`path```), so the same code runs on a classic session and on a
Spark Connect session, where no Python API of the connector is available.

Commit metadata: one JSON object of strings in the commit's ``userMetadata`` (visible in
``DESCRIBE HISTORY``), plus a reserved key ``rfm_write_id`` that lets the writer find its own
commit; :meth:`TableStore.history` strips that key again.

Time travel by timestamp means: the newest version whose commit timestamp, as reported by
``history()``, is at or before the given instant (naive datetimes are UTC). An instant before the
first commit is an error, never version 0.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.errors import ConcurrentWriteError, TableError, java_error_line
from rfm_spark.io.catalog import after_commit
from rfm_spark.io.commits import (
    TXN_KEY,
    Commit,
    Txn,
    check_purpose,
    check_version,
    check_write_args,
    decode_metadata,
    encode_metadata,
    missing_table,
    ms_to_utc,
    new_write_id,
    partition_strings,
    version_at,
)
from rfm_spark.io.layout import check_layout, reject_timestamp_ntz, spark_fields
from rfm_spark.paths import absolute
from rfm_spark.session import require_delta
from rfm_spark.sqltext import quote, sql_string

CREATE_ATTEMPTS = 3
# what Delta says of a path that holds no Delta table (missing, or plain files)
_NOT_A_TABLE = ("DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND", "PATH_NOT_FOUND")


def delta_path(path: str) -> str:
    """``delta.`path``` for Delta SQL on a table given by its location (made absolute: Delta's
    SQL takes a relative path for a table name)."""
    return f"delta.{quote(absolute(path))}"


def open_store(spark: SparkSession) -> TableStore:
    """The table store on ``spark``, after checking that the session has the Delta connector.

    Raises:
        EnvironmentProblem: The connector is not on the session (one line saying how to add it).
    """
    require_delta(spark)
    return TableStore(spark)


class TableStore:
    """Read and write partitioned, versioned Delta tables at paths (any Hadoop URI).

    Args:
        spark: A session with the Delta Lake connector (see :func:`open_store`).
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    # ---- reading ---------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True when a Delta table exists at ``path``."""
        try:
            self.spark.sql(f"DESCRIBE DETAIL {delta_path(path)}").collect()
        except Exception as exc:
            if any(code in str(exc) for code in _NOT_A_TABLE):
                return False
            raise
        return True

    def _commits(self, path: str, limit: int | None = None) -> list[Commit]:
        try:
            hist = self.spark.sql(
                f"DESCRIBE HISTORY {delta_path(path)}" + (f" LIMIT {int(limit)}" if limit else "")
            )
            rows = hist.select(
                "version",
                F.unix_millis("timestamp").alias("ts_ms"),  # UTC, independent of local TZ
                "operation",
                "userMetadata",
            ).collect()
        except Exception as exc:
            if any(code in str(exc) for code in (*_NOT_A_TABLE, "DELTA_TABLE_ONLY_OPERATION")):
                raise missing_table(path) from None
            raise
        commits = []
        for row in sorted(rows, key=lambda r: -int(r["version"])):
            metadata, write_id = decode_metadata(row["userMetadata"])
            commits.append(
                Commit(
                    version=int(row["version"]),
                    timestamp=ms_to_utc(int(row["ts_ms"])),
                    operation=str(row["operation"] or ""),
                    metadata=metadata,
                    write_id=write_id,
                )
            )
        return commits

    def version(self, path: str) -> int:
        """Latest version of the table at ``path``; :class:`TableError` when there is none."""
        return self._commits(path, limit=1)[0].version

    def history(self, path: str) -> list[dict[str, Any]]:
        """Commits of the table, newest first.

        Returns:
            One dict per commit: ``version`` (int), ``timestamp`` (aware UTC datetime),
            ``operation`` (str) and ``metadata`` (the strings given at write; ``{}`` if none).

        Raises:
            TableError: No table at ``path``.
        """
        return [c.as_dict() for c in self._commits(path)]

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime.datetime | None = None,
    ) -> DataFrame:
        """The table as of ``version`` or ``timestamp`` (``versionAsOf``; latest if neither).

        Raises:
            TableError: No table, both arguments given, unknown version, or a timestamp before
                the first commit.
        """
        if version is not None and timestamp is not None:
            raise TableError(f"Cannot read {path}: pass version or timestamp, not both.")
        reader = self.spark.read.format("delta")
        if version is None and timestamp is None:
            if not self.exists(path):  # a clear error when there is no table
                raise missing_table(path)
            return reader.load(absolute(path))
        commits = self._commits(path)
        if timestamp is not None:
            version = version_at(commits, timestamp, path)
        assert version is not None
        check_version(version, commits[0].version, path)
        return reader.option("versionAsOf", version).load(absolute(path))

    def txn_version(self, path: str, txn: Txn) -> int | None:
        """The version whose commit carried ``txn`` (from the commit metadata); None if none.

        Raises:
            UsageError: That commit was made for another purpose (a reused idempotency key).
        """
        if not self.exists(path):
            return None
        for commit in self._commits(path):
            if commit.metadata.get(TXN_KEY) == txn.key:
                check_purpose(commit, txn, path)
                return commit.version
        return None

    def committed_version(self, path: str, write_id: str, txn: Txn | None) -> int:
        """The version of this write's commit, or of the earlier commit of the same ``txn``."""
        for limit in (20, None):
            for commit in self._commits(path, limit=limit):
                if commit.write_id == write_id:
                    return commit.version
        found = self.txn_version(path, txn) if txn is not None else None
        if found is None:
            raise TableError(
                f"The commit of write {write_id} was not found in the history of {path}."
            )
        return found

    # ---- writing ---------------------------------------------------------------------------

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
        See :meth:`write_partitions` for the arguments, result and errors.
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
    ) -> int:
        """Replace the rows of ``partition_values`` with ``df`` (``replaceWhere``), one commit.

        Delta checks that every row matches the partitions and that the schema matches the
        table before anything is committed; its optimistic concurrency rejects a commit whose
        partitions another writer changed meanwhile. ``table_properties`` (``delta.*``) are
        applied when the table is created; ``txn`` becomes ``txnAppId`` / ``txnVersion``, with
        which Delta skips a write the table already holds.

        Args:
            df: The new rows, including ``partition_column``.
            path: Table root.
            partition_column: The table's partition column (e.g. ``snapshot_date``).
            partition_values: The partitions to replace.
            metadata: Strings stored with the commit (returned by :meth:`history`).
            table_properties: ``delta.*`` properties applied when the table is created.
            txn: Make the write idempotent: skipped when the table already holds it.

        Returns:
            The committed version (the earlier one when ``txn`` was already committed).

        Raises:
            TableError: Bad arguments, schema mismatch or rows outside the partitions.
            ConcurrentWriteError: Delta reported a conflicting concurrent commit.
        """
        values = partition_strings(partition_values, path)
        check_write_args(df, path, partition_column, table_properties)
        write_id = new_write_id()
        user_metadata = encode_metadata(metadata, write_id, path, txn)
        predicate = _partition_predicate(df, partition_column, values)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            exists, added = self._check_schema(df, path, partition_column)
            writer = (
                df.write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", predicate)
                # the session may default to dynamic overwrite, which cannot go with replaceWhere
                .option("partitionOverwriteMode", "static")
                .option("userMetadata", user_metadata)
                .partitionBy(partition_column)
            )
            if added:
                writer = writer.option("mergeSchema", "true")  # only adds columns: checked
            if txn is not None:
                writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
            for key, value in ({} if exists else table_properties or {}).items():
                writer = writer.option(key, value)  # delta.* options become table properties
            try:
                writer.save(absolute(path))
                break
            except Exception as exc:
                # Two first writes race to create the table; the loser finds it created and
                # replaces its own partitions like any later write.
                if exists or attempt == CREATE_ATTEMPTS or not _lost_creation_race(exc):
                    raise _write_error(exc, path) from exc
        version = self.committed_version(path, write_id, txn)
        after_commit(self.spark, path)  # its name in the catalog, with output.schema
        return version

    def _check_schema(
        self, df: DataFrame, path: str, partition_column: str
    ) -> tuple[bool, list[str]]:
        """Whether the table exists, and the columns the write adds to it; a layout the write
        cannot go into fails here, before any work."""
        new_fields = spark_fields(df.schema)
        reject_timestamp_ntz(new_fields, path)
        detail = self._detail(path)
        if detail is None:
            return False, []
        added = check_layout(
            path,
            lambda: self.version(path),
            list(detail["partitionColumns"] or []),
            partition_column,
            spark_fields(self.spark.read.format("delta").load(absolute(path)).schema),
            new_fields,
        )
        return True, added

    def _detail(self, path: str) -> dict[str, Any] | None:
        """``DESCRIBE DETAIL`` of the table as a dict; None when there is no table."""
        try:
            row = self.spark.sql(f"DESCRIBE DETAIL {delta_path(path)}").first()
        except Exception as exc:
            if any(code in str(exc) for code in _NOT_A_TABLE):
                return None
            raise
        return row.asDict() if row is not None else None

    # ---- maintenance -----------------------------------------------------------------------

    def vacuum(self, path: str, *, retain_hours: int, dry_run: bool) -> list[str]:
        """``VACUUM ... RETAIN n HOURS``: the data files that are (or would be) deleted.

        The files are those of a ``DRY RUN`` made just before the real one. Delta refuses a
        retention below the table's ``delta.deletedFileRetentionDuration``; callers guard their
        own, longer floor (see :func:`rfm_spark.history.vacuum`).
        """
        if not self.exists(path):
            raise missing_table(path)
        sql = f"VACUUM {delta_path(path)} RETAIN {int(retain_hours)} HOURS"
        listed = sorted(str(r[0]) for r in self.spark.sql(sql + " DRY RUN").collect())
        if not dry_run:
            self.spark.sql(sql).collect()
        return listed

    def optimize(self, path: str, *, zorder_by: Sequence[str] = ()) -> dict[str, int]:
        """Compact small files per partition, Z-ordered by ``zorder_by`` when given.

        Returns:
            ``files_added`` and ``files_removed`` as Delta reports them.
        """
        if not self.exists(path):
            raise missing_table(path)
        order = f" ZORDER BY ({', '.join(quote(c) for c in zorder_by)})" if zorder_by else ""
        result = self.spark.sql(f"OPTIMIZE {delta_path(path)}{order}")
        metrics = result.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        added, removed = (int(metrics[0]), int(metrics[1])) if metrics else (0, 0)
        return {"files_added": added, "files_removed": removed}


def _partition_predicate(df: DataFrame, partition_column: str, values: Sequence[str]) -> str:
    """``replaceWhere`` text: the partition column IN the values, cast to its type."""
    type_name = df.schema[partition_column].dataType.simpleString()
    literals = ", ".join(f"CAST({sql_string(v)} AS {type_name})" for v in values)
    return f"{quote(partition_column)} IN ({literals})"


def _lost_creation_race(exc: Exception) -> bool:
    text = str(exc)
    return any(k in text for k in ("ProtocolChangedException", "MetadataChangedException"))


def _write_error(exc: Exception, path: str) -> TableError:
    text = str(exc)
    first = java_error_line(exc) or type(exc).__name__
    if "concurrent" in text.lower():
        return ConcurrentWriteError(
            f"Another writer changed {path} while this write was committing: {first}. "
            "Fix: rerun the write."
        )
    return TableError(f"Writing the Delta table at {path} failed: {first}")
