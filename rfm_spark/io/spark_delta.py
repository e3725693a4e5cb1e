"""The native backend: the Delta Lake connector writes, commits and time-travels."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.errors import ConcurrentWriteError, TableError, java_error_line
from rfm_spark.io.commits import (
    Commit,
    Txn,
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
from rfm_spark.io.store import StoreBase
from rfm_spark.session import has_delta_extension
from rfm_spark.sqltext import quote, sql_string

CREATE_ATTEMPTS = 3


class SparkDeltaStore(StoreBase):
    """Delta tables through the native ``format("delta")`` data source (needs the Delta jars).

    Args:
        spark: A session with ``DeltaSparkSessionExtension`` whose Delta classes load.

    Raises:
        TableError: The session has no Delta extension / jars.
    """

    backend = "spark"

    def __init__(self, spark: SparkSession) -> None:
        if not has_delta_extension(spark):
            found = spark.conf.get("spark.sql.extensions", "") or "(none)"
            raise TableError(
                "The 'spark' table backend needs the Delta Lake jars and "
                f"DeltaSparkSessionExtension on this session; spark.sql.extensions is {found} "
                "or the io.delta classes do not load. Fix: 'make install' (or 'python -m "
                "rfm_spark.jars fetch') and start a new process; on a cluster 'spark-submit "
                "--packages io.delta:delta-spark_<spark>_2.13:<delta-spark version>'; or use "
                "the 'delta-rs' backend."
            )
        super().__init__(spark)

    def _table(self, path: str) -> Any:
        from delta.tables import DeltaTable as SparkDeltaTable

        if not SparkDeltaTable.isDeltaTable(self.spark, path):
            raise missing_table(path)
        return SparkDeltaTable.forPath(self.spark, path)

    def exists(self, path: str) -> bool:
        """True when a Delta table exists at ``path``."""
        from delta.tables import DeltaTable as SparkDeltaTable

        return bool(SparkDeltaTable.isDeltaTable(self.spark, path))

    def _commits(self, path: str, limit: int | None = None) -> list[Commit]:
        table = self._table(path)
        hist = table.history(limit) if limit else table.history()
        rows = (
            hist.select(
                "version",
                F.unix_millis("timestamp").alias("ts_ms"),  # UTC, independent of local TZ
                "operation",
                "userMetadata",
            )
            .orderBy(F.desc("version"))
            .collect()
        )
        commits = []
        for row in rows:
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
        """Latest version of the table at ``path``.

        Raises:
            TableError: No table at ``path``.
        """
        return self._commits(path, limit=1)[0].version

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
        if version is None and timestamp is None:
            self._table(path)  # a clear error when there is no table
            return self.spark.read.format("delta").load(path)
        commits = self._commits(path)
        if timestamp is not None:
            version = version_at(commits, timestamp, path)
        reader = self.spark.read.format("delta")
        if version is not None:
            check_version(version, commits[0].version, path)
            reader = reader.option("versionAsOf", version)
        return reader.load(path)

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
        partitions another writer changed meanwhile. ``table_properties`` are applied when the
        table is created (``delta.*`` writer options); ``txn`` becomes ``txnAppId`` /
        ``txnVersion``, with which Delta skips a write the table already holds.

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
                writer.save(path)
                break
            except Exception as exc:  # AnalysisException, Py4JJavaError, ...
                # Two first writes race to create the table; the loser finds it created and
                # replaces its own partitions like any later write.
                if exists or attempt == CREATE_ATTEMPTS or not _lost_creation_race(exc):
                    raise _write_error(exc, path) from exc
        return self.committed_version(path, write_id, txn)

    def committed_version(self, path: str, write_id: str, txn: Txn | None) -> int:
        """As :meth:`StoreBase.committed_version`, looking at the newest commits first."""
        for commit in self._commits(path, limit=20):
            if commit.write_id == write_id:
                return commit.version
        return super().committed_version(path, write_id, txn)

    def _check_schema(
        self, df: DataFrame, path: str, partition_column: str
    ) -> tuple[bool, list[str]]:
        """The checks and messages both backends give before any work: whether the table
        exists, and the columns the write adds to it."""
        new_fields = spark_fields(df.schema)
        reject_timestamp_ntz(new_fields, path)
        if not self.exists(path):
            return False, []
        from delta.tables import DeltaTable as SparkDeltaTable

        table = SparkDeltaTable.forPath(self.spark, path)  # one log load for both checks
        detail = table.detail().select("partitionColumns").first()
        added = check_layout(
            path,
            lambda: self.version(path),
            list(detail[0]) if detail else [],
            partition_column,
            spark_fields(table.toDF().schema),
            new_fields,
        )
        return True, added

    # ---- maintenance -----------------------------------------------------------------------

    def vacuum(self, path: str, *, retain_hours: int, dry_run: bool) -> list[str]:
        """``VACUUM ... RETAIN n HOURS [DRY RUN]``: the data files that are (or would be) deleted.

        Delta refuses a retention below the table's ``delta.deletedFileRetentionDuration``;
        callers guard their own, longer floor (see :func:`rfm_spark.history.vacuum`).
        """
        self._table(path)  # a clear error when there is no table
        sql = f"VACUUM delta.{quote(path)} RETAIN {int(retain_hours)} HOURS"
        if not dry_run:
            before = _data_files(self.spark, path)
            self.spark.sql(sql)
            return sorted(before - _data_files(self.spark, path))
        rows = self.spark.sql(sql + " DRY RUN").collect()
        return sorted(str(r[0]) for r in rows)

    def optimize(self, path: str, *, zorder_by: Sequence[str] = ()) -> dict[str, int]:
        """Compact small files per partition, Z-ordered by ``zorder_by`` when given.

        Returns:
            ``files_added`` and ``files_removed`` as Delta reports them.
        """
        builder = self._table(path).optimize()
        result = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
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


def _data_files(spark: SparkSession, path: str) -> set[str]:
    """Data files under the table folder (for what a VACUUM deleted)."""
    jvm: Any = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    out: set[str] = set()
    if not fs.exists(hadoop_path):
        return out
    files = fs.listFiles(hadoop_path, True)
    while files.hasNext():
        name = str(files.next().getPath().toString())
        if "/_delta_log/" not in name and name.endswith(".parquet"):
            out.add(name)
    return out
