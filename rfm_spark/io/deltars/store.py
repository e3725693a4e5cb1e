"""The delta-rs backend: Spark writes Parquet, the driver commits with ``deltalake``.

The fallback for machines that cannot fetch the Delta connector's jars. Rows are never collected
to the driver. Paths must be local (or a shared filesystem mounted at the same path on every node).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import DeltaError
from deltalake.transaction import (
    AddAction,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import TableError
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
from rfm_spark.io.deltars.commit import commit_files, is_committed, verify_partitions
from rfm_spark.io.deltars.schema import (
    arrow_schema_of,
    check_table,
    files_schema,
    to_delta_schema,
)
from rfm_spark.io.deltars.staging import (
    MANIFEST_FILE,
    OWNER_FILE,
    STAGED_DATA,
    STAGING_DIR,
    StagedFile,
    data_files,
    fault_point,
    final_name,
    list_staged_files,
    local_root,
    owner_record,
    remove_leftovers,
    rmdir_if_empty,
    spark_path,
    write_json,
    write_staged_parquet,
)
from rfm_spark.io.deltars.stats import StatsConfig, file_stats
from rfm_spark.io.store import StoreBase
from rfm_spark.sqltext import quote

log = logging.getLogger(__name__)

STALE_STAGING_HOURS = 6.0
COMMIT_ATTEMPTS = 5


class DeltaRsStore(StoreBase):
    """Delta tables written by Spark's Parquet writer and committed with ``deltalake``.

    Works without the Delta jars. Paths must be local filesystem paths (``file://`` tolerated)
    that the driver and all executors see at the same location.

    Args:
        spark: Session used to write the Parquet files and to read tables.
        stale_staging_hours: At the start of a write, staging folders of writers that are known
            dead (a process of this machine that no longer runs) are removed at once; those
            whose writer cannot be checked (another machine) once unchanged for this long.
    """

    backend = "delta-rs"

    def __init__(self, spark: SparkSession, *, stale_staging_hours: float = STALE_STAGING_HOURS):
        super().__init__(spark)
        self.stale_staging_hours = stale_staging_hours

    # ---- reading ---------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True when a Delta table exists at ``path``."""
        return bool(DeltaTable.is_deltatable(local_root(path)))

    def _open(self, root: str, version: int | None = None) -> DeltaTable:
        if not DeltaTable.is_deltatable(root):
            raise missing_table(root)
        try:
            return DeltaTable(root, version=version)
        except (DeltaError, OSError) as exc:
            raise TableError(
                f"Cannot load the Delta table at {root}"
                + (f" at version {version}" if version is not None else "")
                + f": {exc}. Fix: check the path and that the version still exists."
            ) from exc

    def version(self, path: str) -> int:
        """Latest version of the table at ``path``.

        Raises:
            TableError: No table at ``path``.
        """
        return int(self._open(local_root(path)).version())

    def _commits(self, path: str) -> list[Commit]:
        root = local_root(path)
        commits = []
        for entry in self._open(root).history():
            metadata, write_id = decode_metadata(entry.get("userMetadata"))
            commits.append(
                Commit(
                    version=int(entry["version"]),
                    timestamp=ms_to_utc(int(entry["timestamp"])),
                    operation=str(entry.get("operation", "")),
                    metadata=metadata,
                    write_id=write_id,
                )
            )
        return commits

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime.datetime | None = None,
    ) -> DataFrame:
        """Spark DataFrame of the table as of ``version`` or ``timestamp`` (latest if neither).

        The file list comes from the Delta log (deltalake); Spark reads the Parquet files with
        the table schema, so partition columns keep their type (``snapshot_date`` is a date).

        Raises:
            TableError: No table, both arguments given, unknown version, or a timestamp before
                the first commit.
        """
        root = local_root(path)
        if version is not None and timestamp is not None:
            raise TableError(f"Cannot read {root}: pass version or timestamp, not both.")
        table = self._open(root)
        if timestamp is not None:
            version = version_at(self._commits(root), timestamp, root)
        if version is not None:
            check_version(version, int(table.version()), root)
            table = self._open(root, version)
        schema = T.StructType.fromJson(json.loads(table.schema().to_json()))
        files = [local for local, _ in data_files(table, root)]
        if not files:
            return self.spark.createDataFrame([], schema)
        df = (
            self.spark.read.schema(schema)
            .option("basePath", spark_path(root, escape_glob=False))
            .parquet(*[spark_path(f) for f in files])
        )
        return df.select(*[F.col(quote(n)) for n in schema.fieldNames()])

    # ---- writing ---------------------------------------------------------------------------

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
        """Replace the rows of ``partition_values`` with ``df`` in one commit.

        Spark writes the files (distributed) into ``<root>/_staging/<write_id>/data/``; they are
        checked (partition values, schema), moved into ``<root>/<column>=<value>/`` and
        committed with ``deltalake``. The staging folder is always removed; files of a write
        that did not commit are deleted again. A write killed at any point (SIGKILL, lost
        machine) leaves the table at its previous version: readers see only committed files,
        and the next write removes its staging folder and moved but uncommitted files (its
        ``_owner.json`` and ``_manifest.json``; see :func:`remove_leftovers`).

        Args:
            df: The new rows; every row's ``partition_column`` must be one of
                ``partition_values``. An empty ``df`` empties the partitions.
            path: Table root (local path).
            partition_column: The table's partition column.
            partition_values: The partitions to replace.
            metadata: Strings stored with the commit.
            table_properties: ``delta.*`` properties applied when the table is created.
            txn: An idempotent write: skipped when the table already holds it.

        Returns:
            The committed version (the earlier one when ``txn`` was already committed).

        Raises:
            TableError: Bad arguments, rows outside the partitions, schema mismatch (nothing
                committed), or a failed Parquet write.
            ConcurrentWriteError: The commit conflicted with another writer, or the committed
                partitions hold files this write did not add.
        """
        root = local_root(path)
        values = partition_strings(partition_values, root)
        check_write_args(df, root, partition_column, table_properties)
        write_id = new_write_id()
        user_metadata = encode_metadata(metadata, write_id, root, txn)
        df_schema = self._precheck(df, root, partition_column)
        done = self.txn_version(root, txn) if txn is not None else None
        if done is not None:
            return done
        staging_parent = os.path.join(root, STAGING_DIR)
        staging = os.path.join(staging_parent, write_id)
        remove_leftovers(root, staging_parent, self.stale_staging_hours)
        moved: list[str] = []
        committed = False
        try:
            # The owner record lets the next writer tell a killed write from a running one.
            os.makedirs(staging)
            write_json(os.path.join(staging, OWNER_FILE), owner_record(write_id))
            staged, delta_schema, table, stats = self._stage(
                df, staging, df_schema, partition_column, values, table_properties
            )
            # Written before the move: what a killed write leaves in the partition folders.
            write_json(
                os.path.join(staging, MANIFEST_FILE),
                {"files": [f"{s.dir_name}/{final_name(s.name, write_id)}" for s in staged]},
            )
            actions = self._move(staged, root, partition_column, write_id, stats, moved)
            fault_point("moved")
            version, committed = commit_files(
                root,
                table,
                delta_schema,
                actions,
                partition_column=partition_column,
                values=values,
                user_metadata=user_metadata,
                table_properties=table_properties,
                write_id=write_id,
                txn=txn,
            )
            fault_point("committed")
            if committed:
                verify_partitions(root, version, partition_column, values, moved)
                log.info("committed %d file(s) to %s version %d", len(actions), root, version)
            return version
        finally:
            self._clean_up(root, staging, moved, committed=committed, write_id=write_id)

    def _precheck(self, df: DataFrame, root: str, partition_column: str) -> pa.Schema:
        """Cheap checks before Spark spends any work: Delta types, partitioning, table schema."""
        df_schema = arrow_schema_of(df, root)
        if DeltaTable.is_deltatable(root):
            check_table(DeltaTable(root), to_delta_schema(df_schema, root), partition_column, root)
        else:
            to_delta_schema(df_schema, root)
        return df_schema

    def _stage(
        self,
        df: DataFrame,
        staging: str,
        df_schema: pa.Schema,
        partition_column: str,
        values: list[str],
        table_properties: Mapping[str, str] | None,
    ) -> tuple[list[StagedFile], DeltaSchema, DeltaTable | None, dict[str, str]]:
        """Spark writes the files; they are checked; their statistics read from the footers."""
        root = os.path.dirname(os.path.dirname(staging))
        write_staged_parquet(df, os.path.join(staging, STAGED_DATA), partition_column, root)
        staged = list_staged_files(os.path.join(staging, STAGED_DATA), partition_column, root)
        fault_point("staged")
        unexpected = sorted({"null" if s.value is None else s.value for s in staged} - set(values))
        if unexpected:
            raise TableError(
                f"Cannot write {root}: the DataFrame has rows with {partition_column} = "
                f"{', '.join(unexpected)}, outside the partition(s) being replaced "
                f"({', '.join(values)}). Nothing was committed. Fix: set the column with "
                f"F.lit(...) or filter the rows first."
            )
        # checked again from the written footers: that is what readers will see
        delta_schema = to_delta_schema(files_schema(df_schema, staged, partition_column), root)
        table = DeltaTable(root) if DeltaTable.is_deltatable(root) else None
        if table is not None:
            check_table(table, delta_schema, partition_column, root)
            config: Mapping[str, str | None] = table.metadata().configuration
        else:
            config = dict(table_properties or {})
        return (
            staged,
            delta_schema,
            table,
            self._stats(staged, StatsConfig.from_table_config(config)),
        )

    @staticmethod
    def _clean_up(
        root: str, staging: str, moved: list[str], *, committed: bool, write_id: str
    ) -> None:
        """Remove the staging folder, and the moved files of a write that did not commit."""
        # moved files first: the staging folder's manifest still lists them if this dies
        if not committed and moved and not is_committed(root, write_id):
            for file_path in moved:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(file_path)
                rmdir_if_empty(os.path.dirname(file_path))
        shutil.rmtree(staging, ignore_errors=True)
        rmdir_if_empty(os.path.dirname(staging))
        if not committed:
            rmdir_if_empty(root)  # a first write that failed leaves no empty table folder

    # ---- maintenance -----------------------------------------------------------------------

    def vacuum(self, path: str, *, retain_hours: int, dry_run: bool) -> list[str]:
        """deltalake's VACUUM: the files that are (or would be) deleted."""
        table = self._open(local_root(path))
        files = table.vacuum(
            retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False
        )
        return sorted(files)

    def optimize(self, path: str, *, zorder_by: Sequence[str] = ()) -> dict[str, int]:
        """deltalake's OPTIMIZE (compaction, or Z-order by ``zorder_by``)."""
        table = self._open(local_root(path))
        metrics = table.optimize.z_order(list(zorder_by)) if zorder_by else table.optimize.compact()
        return {
            "files_added": int(metrics.get("numFilesAdded", 0)),
            "files_removed": int(metrics.get("numFilesRemoved", 0)),
        }

    @staticmethod
    def _stats(staged: Sequence[StagedFile], config: StatsConfig) -> dict[str, str]:
        if not staged:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(staged))) as pool:
            results = pool.map(lambda s: file_stats(s.path, config), staged)
            return {s.path: r for s, r in zip(staged, results, strict=True)}

    @staticmethod
    def _move(
        staged: Sequence[StagedFile],
        root: str,
        partition_column: str,
        write_id: str,
        stats: Mapping[str, str],
        moved: list[str],
    ) -> list[AddAction]:
        """Move staged files into ``<root>/<column>=<value>/``; return their add actions."""
        actions = []
        for s in staged:
            target_dir = os.path.join(root, s.dir_name)
            os.makedirs(target_dir, exist_ok=True)
            name = final_name(s.name, write_id)
            target = os.path.join(target_dir, name)
            if os.path.exists(target):
                raise TableError(f"Cannot write {root}: {target} already exists.")
            os.replace(s.path, target)
            moved.append(target)
            st = os.stat(target)
            actions.append(
                AddAction(
                    path=f"{s.dir_name}/{name}",  # plain relative path; deltalake encodes it
                    size=st.st_size,
                    partition_values={partition_column: s.value},
                    modification_time=st.st_mtime_ns // 1_000_000,
                    data_change=True,
                    stats=stats[s.path],
                )
            )
        return actions
