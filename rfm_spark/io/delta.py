"""Versioned Delta Lake tables behind one small interface, with or without the Delta jars.

Two backends implement :class:`TableStore` (design section 5):

- ``spark`` (:class:`SparkDeltaStore`): native ``format("delta")`` writes with ``replaceWhere``,
  ``userMetadata`` and ``versionAsOf``. Needs ``DeltaSparkSessionExtension`` and the Delta jars.
- ``delta-rs`` (:class:`DeltaRsStore`): Spark's distributed Parquet writer writes the data files
  into ``<root>/_staging/<write_id>/``; the driver moves them into the hive-style layout
  ``<root>/<partition_column>=<value>/`` and commits them with the ``deltalake`` package, with
  per-file statistics read from the Parquet footers. Rows are never collected to the driver.
  Paths must be local (or a shared filesystem mounted at the same path on every node).

Both backends store the commit metadata the same way: one JSON object of strings in the commit's
``userMetadata`` (visible in ``DESCRIBE HISTORY``), plus a reserved key ``rfm_write_id`` that
lets the writer find its own commit; :meth:`TableStore.history` strips that key again.

Time travel by timestamp means: the newest version whose commit timestamp, as reported by
``history()``, is at or before the given instant (naive datetimes are UTC). An instant before the
first commit is an error, never version 0.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    create_table_with_add_actions,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import ConcurrentWriteError, TableError, java_error_line
from rfm_spark.session import has_delta_extension
from rfm_spark.validation import quote

log = logging.getLogger(__name__)

BACKENDS = ("spark", "delta-rs")
STAGING_DIR = "_staging"
STALE_STAGING_HOURS = 6.0
FAULT_ENV = "RFM_SPARK_FAULT"  # testing aid, see _fault_point
_OWNER_FILE = "_owner.json"  # in a staging folder: the writing process
_MANIFEST_FILE = "_manifest.json"  # in a staging folder: files about to be moved into the table
_STAGED_DATA = "data"  # in a staging folder: what Spark writes
COMMIT_ATTEMPTS = 5
WRITE_ID_KEY = "rfm_write_id"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_DEFAULT_INDEXED_COLS = 32  # delta.dataSkippingNumIndexedCols default
_STATS_STRING_PREFIX = 32  # delta-spark's prefix length for string min/max
_MAX_CODE_POINT = "\U0010ffff"
_TIMESTAMP_CONF = "spark.sql.parquet.outputTimestampType"
_GLOB_CHARS = "{}[]*?\\"
_UNSAFE_PATH_CHARS = "?#%\\"
_NO_JARS_FIX = (
    "Fix: start Spark with the Delta Lake jars (e.g. 'spark-submit --packages "
    "io.delta:delta-spark_2.13:<version matching delta-spark>' or "
    "delta.configure_spark_with_delta_pip) and spark.sql.extensions="
    "io.delta.sql.DeltaSparkSessionExtension, spark.sql.catalog.spark_catalog="
    "org.apache.spark.sql.delta.catalog.DeltaCatalog; or use the 'delta-rs' backend."
)


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
    ) -> int:
        """Replace the rows of several partitions with ``df`` in one commit; return its version."""
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
        return SparkDeltaStore(spark)
    return DeltaRsStore(spark)


# --------------------------------------------------------------------------------------------
# Helpers shared by both backends
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Commit:
    version: int
    timestamp: datetime.datetime
    operation: str
    metadata: dict[str, str]
    write_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "timestamp": self.timestamp,
            "operation": self.operation,
            "metadata": dict(self.metadata),
        }


def _new_write_id() -> str:
    stamp = datetime.datetime.now(_UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:12]}"


def _as_utc(ts: datetime.datetime) -> datetime.datetime:
    return ts.replace(tzinfo=_UTC) if ts.tzinfo is None else ts.astimezone(_UTC)


def _ms_to_utc(ms: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(milliseconds=ms)


def _partition_strings(values: Sequence[datetime.date | str], path: str) -> list[str]:
    """Partition values as Delta partition strings (dates as ``YYYY-MM-DD``), de-duplicated."""
    if isinstance(values, (str, datetime.date)):
        values = [values]
    out: list[str] = []
    for value in values:
        if isinstance(value, datetime.datetime) or not isinstance(value, (datetime.date, str)):
            raise TableError(
                f"Cannot write {path}: partition value {value!r} ({type(value).__name__}) is not "
                "a datetime.date or str. Fix: pass a date (or its ISO string)."
            )
        text = value.isoformat() if isinstance(value, datetime.date) else value
        if text == "":
            raise TableError(
                f"Cannot write {path}: an empty string is not a valid partition value "
                "(Delta stores it as null). Fix: pass a non-empty value."
            )
        if text not in out:
            out.append(text)
    if not out:
        raise TableError(f"Cannot write {path}: no partition values given. Fix: pass at least one.")
    return out


def _check_write_args(
    df: DataFrame,
    path: str,
    partition_column: str,
    table_properties: Mapping[str, str] | None,
) -> None:
    if partition_column not in df.columns:
        raise TableError(
            f"Cannot write {path}: the DataFrame has no partition column {partition_column!r}; "
            f"present: {', '.join(df.columns) or '(none)'}. "
            f"Fix: add it, e.g. df.withColumn({partition_column!r}, F.lit(value))."
        )
    bad = [
        k
        for k, v in (table_properties or {}).items()
        if not (isinstance(k, str) and k.startswith("delta.") and isinstance(v, str))
    ]
    if bad:
        raise TableError(
            f"Cannot write {path}: table properties must be 'delta.*' keys with string values; "
            f"found {', '.join(map(repr, bad))}. Fix: use e.g. "
            "{'delta.logRetentionDuration': 'interval 60 days'}."
        )


def _encode_metadata(metadata: Mapping[str, str] | None, write_id: str, path: str) -> str:
    """The ``userMetadata`` string: a JSON object of strings plus the reserved write id."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or key == WRITE_ID_KEY:
            raise TableError(
                f"Cannot write {path}: metadata key {key!r} is not allowed (keys must be strings, "
                f"{WRITE_ID_KEY!r} is reserved). Fix: rename the key."
            )
        out[key] = value if isinstance(value, str) else str(value)
    out[WRITE_ID_KEY] = write_id
    return json.dumps(out, sort_keys=True, ensure_ascii=False)


def _decode_metadata(raw: object) -> tuple[dict[str, str], str | None]:
    """Split a commit's ``userMetadata`` into the caller's metadata and our write id."""
    if raw is None or raw == "":
        return {}, None
    try:
        obj = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"userMetadata": str(raw)}, None
    if not isinstance(obj, dict):
        return {"userMetadata": str(raw)}, None
    write_id = obj.pop(WRITE_ID_KEY, None)
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
    return metadata, write_id if isinstance(write_id, str) else None


def _version_at(commits: Sequence[_Commit], timestamp: datetime.datetime, path: str) -> int:
    """Newest version committed at or before ``timestamp``; TableError if before the first."""
    if not isinstance(timestamp, datetime.datetime):
        raise TableError(
            f"Cannot time travel {path}: timestamp must be a datetime.datetime, got "
            f"{type(timestamp).__name__}. Fix: pass e.g. datetime.datetime(2024, 1, 31, tzinfo=UTC)."
        )
    ts = _as_utc(timestamp)
    if not commits:
        raise TableError(f"Cannot time travel {path}: the table has no commits.")
    first = min(commits, key=lambda c: c.version)
    candidates = [c.version for c in commits if c.timestamp <= ts]
    if not candidates:
        raise TableError(
            f"Cannot read {path} as of {ts.isoformat()}: that is before the first available "
            f"commit (version {first.version} at {first.timestamp.isoformat()}). Fix: pass a "
            "timestamp at or after it, or a version number."
        )
    return max(candidates)


def _check_version(version: int, latest: int, path: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
        raise TableError(
            f"Cannot read {path} at version {version!r}: versions go from 0 to {latest}. "
            "Fix: pass a version in that range (see history())."
        )


def _missing_table(path: str) -> TableError:
    return TableError(
        f"No Delta table at {path} (no _delta_log found). Fix: check the path or warehouse "
        "directory, or write the table first."
    )


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class _StoreBase:
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

        Returns:
            The committed table version.

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
    ) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _commits(self, path: str) -> list[_Commit]:  # pragma: no cover - overridden
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


# --------------------------------------------------------------------------------------------
# delta-rs backend
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StagedFile:
    dir_name: str  # directory name as Spark wrote it (escaped), e.g. snapshot_date=2024-01-31
    value: str | None  # decoded partition value; None for __HIVE_DEFAULT_PARTITION__
    path: str  # absolute path in the staging folder
    name: str  # file name


def _local_root(path: str) -> str:
    """Plain absolute filesystem path of a table root (``file://`` tolerated)."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
        if text.startswith("localhost/"):
            text = text[len("localhost") :]
    elif text.startswith("file:"):
        text = text[len("file:") :]
    elif "://" in text:
        raise TableError(
            f"The delta-rs backend reads and writes local paths only; got {path!r}. Fix: use a "
            "local or mounted path, or the 'spark' backend (Delta jars) for object stores."
        )
    root = os.path.abspath(os.path.expanduser(text))
    bad = sorted({ch for ch in root if ch in _UNSAFE_PATH_CHARS})
    if bad:
        # deltalake 1.6.6 turns local paths into URLs: '?' and '#' give an empty history,
        # '%XX' is decoded into another directory, a backslash fails.
        raise TableError(
            f"The delta-rs backend cannot use the table path {root!r}: it contains "
            f"{' '.join(repr(c) for c in bad)}, which deltalake misreads in local paths. "
            "Fix: choose a directory name without ? # % or backslash."
        )
    return root


def _spark_path(local_path: str, *, escape_glob: bool = True) -> str:
    """A fully qualified local path for Spark; glob characters escaped so Spark reads it as is."""
    if escape_glob:
        local_path = "".join("\\" + ch if ch in _GLOB_CHARS else ch for ch in local_path)
    return "file://" + local_path


def _strip_file_uri(uri: str) -> str:
    if uri.startswith("file://"):
        return unquote(uri[len("file://") :])
    if uri.startswith("file:"):
        return unquote(uri[len("file:") :])
    return uri


def _data_files(table: DeltaTable, root: str) -> list[tuple[str, dict[str, Any]]]:
    """(local path, partition values) of every file in the loaded snapshot.

    Built from the add actions, not ``DeltaTable.file_uris()``: in deltalake 1.6.6 the latter
    percent-encodes the root but not the relative part, so it is not a usable local path when
    the root contains e.g. a space. Add paths are URI-encoded relative paths (Delta protocol).
    """
    actions = pa.table(table.get_add_actions(flatten=False))
    paths = actions.column("path").to_pylist()
    if "partition" in actions.column_names:
        partitions = actions.column("partition").to_pylist()
    else:
        partitions = [{} for _ in paths]
    out = []
    for rel, part in zip(paths, partitions, strict=True):
        if "://" in rel or rel.startswith("file:"):
            local = _strip_file_uri(rel)
        else:
            local = os.path.join(root, unquote(rel))
        out.append((os.path.normpath(local), part or {}))
    return out


def _partition_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def _newest_mtime(path: str) -> float:
    """Newest modification time of ``path`` and the folders below it (a running Spark job keeps
    creating task folders, so an active staging folder always looks recent)."""
    newest = os.stat(path).st_mtime
    for folder, _, _ in os.walk(path):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, os.stat(folder).st_mtime)
    return newest


def _fault_point(name: str) -> None:
    """Testing aid for the crash tests: when the environment variable ``RFM_SPARK_FAULT`` names
    this point, the process kills itself with SIGKILL here (no cleanup, no ``finally``)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _write_json(path: str, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` so that readers see the whole file or none (temporary file + rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
    os.replace(tmp, path)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of ``pid`` from /proc; None if unknown."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 1 :].split()  # the command name may hold spaces and ')'
    try:
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
    except (IndexError, ValueError):
        return None


def _machine() -> dict[str, str | None]:
    """Where pids of this process mean something: host name, boot id and pid namespace."""
    pid_ns = None
    with contextlib.suppress(OSError):
        pid_ns = os.readlink("/proc/self/ns/pid")
    return {
        "host": socket.gethostname(),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
    }


def _owner_record(write_id: str) -> dict[str, Any]:
    """Who writes a staging folder: this process on this machine (see :func:`_owner_alive`)."""
    stat = _proc_stat(os.getpid())
    return {
        **_machine(),
        "pid": os.getpid(),
        "start": stat[1] if stat else None,
        "write_id": write_id,
        "created": datetime.datetime.now(_UTC).isoformat(),
    }


def _owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """Is the writer of a staging folder still running? None when it cannot be told here
    (another machine or container, or no owner record): then only the folder's age counts."""
    here = _machine()
    if owner.get("host") != here["host"]:
        return None
    if owner.get("boot_id") and here["boot_id"] and owner["boot_id"] != here["boot_id"]:
        return False  # this machine restarted since
    if owner.get("pid_ns") != here["pid_ns"]:
        return None  # another container with the same host name
    pid = owner.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False  # exited, not yet reaped
    started = owner.get("start")
    return not (isinstance(started, int) and start != started)  # else: the pid was reused


def _committed_files(root: str, write_id: str) -> tuple[bool, set[str]] | None:
    """(is ``write_id`` committed, local paths of the latest snapshot's files); ``(False,
    set())`` without a table; None when the log cannot be read (then nothing may be deleted)."""
    if not DeltaTable.is_deltatable(root):
        return False, set()
    try:
        table = DeltaTable(root)
        committed = any(
            _decode_metadata(entry.get("userMetadata"))[1] == write_id for entry in table.history()
        )
        return committed, {local for local, _ in _data_files(table, root)}
    except (DeltaError, OSError) as exc:
        log.warning("cannot read the Delta log of %s to clean up (%s); files kept", root, exc)
        return None


def _remove_leftovers(root: str, staging_parent: str, max_age_hours: float) -> None:
    """Delete what writers that died (killed, crashed, machine restarted) left behind.

    A staging folder goes when its owner (``_owner.json``: host, pid, process start time) is a
    process of this machine that no longer runs, or, when that cannot be told (another machine,
    no owner file), when nothing in it changed for ``max_age_hours``. Folders of writers that
    still run are never touched. With the folder go the files the dead write had already moved
    into the partition folders (its ``_manifest.json``), unless its commit made it into the log
    or the latest snapshot references them.
    """
    if not os.path.isdir(staging_parent):
        return
    cutoff = time.time() - max_age_hours * 3600
    for write_id in sorted(os.listdir(staging_parent)):
        full = os.path.join(staging_parent, write_id)
        try:
            owner = _read_json(os.path.join(full, _OWNER_FILE)) if os.path.isdir(full) else None
            alive = _owner_alive(owner) if owner else None
            if alive or (alive is None and _newest_mtime(full) >= cutoff):
                continue
            if not os.path.isdir(full):
                os.remove(full)
                continue
        except FileNotFoundError:
            continue  # another writer cleaned it meanwhile
        manifest = _read_json(os.path.join(full, _MANIFEST_FILE)) or {}
        paths = [p for p in manifest.get("files", []) if isinstance(p, str)]
        removed = 0
        committed = False
        if paths:
            state = _committed_files(root, write_id)
            if state is None:
                continue
            committed, referenced = state
            for rel in [] if committed else paths:
                target = os.path.normpath(os.path.join(root, rel))
                if target in referenced or not target.startswith(root + os.sep):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.remove(target)
                    removed += 1
                _rmdir_if_empty(os.path.dirname(target))
        shutil.rmtree(full, ignore_errors=True)
        log.warning(
            "removed leftovers of %s %s under %s: its staging folder%s",
            "a killed write" if alive is False else f"a write idle for {max_age_hours:g} h",
            write_id,
            root,
            " (its commit is in the log)"
            if committed
            else f" and {removed} moved but uncommitted data file(s)",
        )


def _rmdir_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _list_staged_files(staging: str, partition_column: str, root: str) -> list[_StagedFile]:
    """The Parquet files Spark wrote under ``staging`` (``_SUCCESS``, ``.crc`` etc. skipped)."""
    if not os.path.isdir(staging):
        return []
    files: list[_StagedFile] = []
    for entry in sorted(os.listdir(staging)):
        full = os.path.join(staging, entry)
        if entry.startswith(("_", ".")) or not os.path.isdir(full):
            continue
        name, sep, raw = entry.partition("=")
        if not sep or unquote(name) != partition_column:
            raise TableError(
                f"Cannot write {root}: unexpected directory {entry!r} in the staging folder "
                f"(expected {partition_column}=<value>). Nothing was committed."
            )
        value = None if raw == HIVE_NULL else unquote(raw)
        for file_name in sorted(os.listdir(full)):
            if file_name.startswith(("_", ".")) or not file_name.endswith(".parquet"):
                continue
            files.append(_StagedFile(entry, value, os.path.join(full, file_name), file_name))
    return files


def _final_name(name: str, write_id: str) -> str:
    """``part-00000-<uuid>.c000.snappy.parquet`` -> ``part-00000-<write_id>-<uuid>...``."""
    if name.startswith("part-"):
        head, _, rest = name[len("part-") :].partition("-")
        if rest:
            return f"part-{head}-{write_id}-{rest}"
    return f"part-{write_id}-{name}"


def _nullable_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([_nullable_field(t.field(i)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_nullable_type(t.key_type), _nullable_field(t.item_field))
    if pa.types.is_large_list(t):
        return pa.large_list(_nullable_field(t.value_field))
    if pa.types.is_list(t):
        return pa.list_(_nullable_field(t.value_field))
    return t


def _nullable_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, _nullable_type(f.type), nullable=True)


def _strip_type(t: Any) -> Any:
    """A Delta JSON type without nullability and metadata, for comparisons."""
    if isinstance(t, dict):
        drop = {"nullable", "containsNull", "valueContainsNull", "metadata"}
        return {k: _strip_type(v) for k, v in t.items() if k not in drop}
    if isinstance(t, list):
        return [_strip_type(v) for v in t]
    return t


def _type_text(t: Any) -> str:
    return t if isinstance(t, str) else json.dumps(_strip_type(t), sort_keys=True)


def _delta_fields(schema: DeltaSchema) -> dict[str, str]:
    """Column name -> canonical Delta type text."""
    fields = json.loads(schema.to_json())["fields"]
    return {f["name"]: _type_text(_strip_type(f["type"])) for f in fields}


def _to_delta_schema(schema: pa.Schema, root: str) -> DeltaSchema:
    try:
        delta_schema = DeltaSchema.from_arrow(schema)
    except Exception as exc:  # deltalake raises several internal error types here
        raise TableError(
            f"Cannot write {root}: the DataFrame schema has no Delta equivalent ({exc}). "
            f"Found: {schema}. Fix: cast unsupported columns (e.g. intervals) to supported types."
        ) from exc
    _reject_timestamp_ntz(_delta_fields(delta_schema), root)
    return delta_schema


def _check_layout(
    root: str,
    version: int,
    partition_columns: Sequence[str],
    partition_column: str,
    have: Mapping[str, str],
    new: Mapping[str, str],
) -> None:
    """Fail before committing when partitioning or column types differ from the table's.

    Args:
        root: Table path, for the message.
        version: Current table version, for the message.
        partition_columns: The table's partition columns.
        partition_column: The column this write partitions by.
        have: Table column name -> canonical type text.
        new: New data column name -> canonical type text.
    """
    parts = list(partition_columns)
    if parts != [partition_column]:
        raise TableError(
            f"Cannot write {root}: the table is partitioned by {parts or '(nothing)'}, not "
            f"[{partition_column!r}]. Nothing was committed (table stays at version {version}). "
            "Fix: use the table's partition column, or another table path."
        )
    missing = [n for n in have if n not in new]
    extra = [n for n in new if n not in have]
    changed = [
        f"{n} (table {have[n]}, new {new[n]})" for n in have if n in new and have[n] != new[n]
    ]
    if missing or extra or changed:
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected column(s): {', '.join(extra)}")
        if changed:
            problems.append(f"type change(s): {'; '.join(changed)}")
        table_cols = ", ".join(f"{n} {t}" for n, t in have.items())
        raise TableError(
            f"Schema of the new data does not match the Delta table at {root}: "
            f"{'; '.join(problems)}. Nothing was committed (table stays at version {version}). "
            f"Fix: select and cast the DataFrame to the table schema ({table_cols}), or write "
            "to a new table."
        )


def _check_table(table: DeltaTable, schema: DeltaSchema, partition_column: str, root: str) -> None:
    """:func:`_check_layout` of a ``deltalake`` table against the new data's Delta schema."""
    _check_layout(
        root,
        int(table.version()),
        table.metadata().partition_columns,
        partition_column,
        _delta_fields(table.schema()),
        _delta_fields(schema),
    )


def _spark_fields(schema: T.StructType) -> dict[str, str]:
    """Column name -> canonical type text (Spark's JSON types are Delta's schema types)."""
    return {f.name: _type_text(_strip_type(f.dataType.jsonValue())) for f in schema.fields}


def _reject_timestamp_ntz(fields: Mapping[str, str], root: str) -> None:
    ntz = [name for name, t in fields.items() if "timestamp_ntz" in t]
    if ntz:
        raise TableError(
            f"Cannot write {root}: column(s) {', '.join(ntz)} are TIMESTAMP_NTZ, which lifts the "
            "table protocol to reader 3 / writer 7; delta-spark rejects such tables when "
            "delta-rs wrote them, so neither backend writes them. Fix: cast them to TIMESTAMP, "
            "e.g. F.col(c).cast('timestamp')."
        )


# ---- statistics from Parquet footers --------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    path: tuple[str, ...]
    type: pa.DataType
    delta_index: int  # position among Delta's leaf columns (arrays/maps count as one)
    in_collection: bool  # inside an array or map: no statistics


def _leaves(schema: pa.Schema) -> list[_Leaf]:
    """Parquet leaf columns in file order, with the Delta leaf index each belongs to."""
    out: list[_Leaf] = []
    counter = 0

    def walk(t: pa.DataType, path: tuple[str, ...], index: int | None) -> None:
        nonlocal counter
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                walk(t.field(i).type, (*path, t.field(i).name), index)
            return
        in_collection = index is not None
        if index is None:  # a Delta leaf: a primitive, array or map outside any collection
            index = counter
            counter += 1
        if pa.types.is_map(t):
            walk(t.key_type, path, index)
            walk(t.item_type, path, index)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            walk(t.value_type, path, index)
        else:
            out.append(_Leaf(path, t, index, in_collection))

    for field in schema:
        walk(field.type, (field.name,), None)
    return out


def _ts_text(raw: int, unit: str, *, ceil: bool) -> str:
    per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit]
    ms = raw * 1000 if per_ms is None else (-(-raw // per_ms) if ceil else raw // per_ms)
    value = _ms_to_utc(ms)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _stat_value(t: pa.DataType, stats: Any, *, is_max: bool) -> Any:
    """A min/max value in Delta's JSON stats form, or None to leave the column out."""
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return None
        raw = stats.max_raw if is_max else stats.min_raw
        return _ts_text(int(raw), t.unit, ceil=is_max)
    value = stats.max if is_max else stats.min
    if pa.types.is_boolean(t):
        return None
    if pa.types.is_integer(t):
        return int(value)
    if pa.types.is_floating(t):
        value = float(value)
        return value if math.isfinite(value) else None
    if pa.types.is_decimal(t):
        return Decimal(value) if not isinstance(value, Decimal) else value
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if not isinstance(value, str):
            return None
        if len(value) <= _STATS_STRING_PREFIX:
            return value
        prefix = value[:_STATS_STRING_PREFIX]
        return prefix + _MAX_CODE_POINT if is_max else prefix
    if pa.types.is_date(t):
        return value.isoformat() if isinstance(value, datetime.date) else None
    return None


def _json_text(obj: Any) -> str:
    """JSON with Decimals written exactly (json.dumps would need floats)."""
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, Decimal):
        return str(obj)
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def _set_nested(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


@dataclass(frozen=True)
class _StatsConfig:
    num_indexed: int = _DEFAULT_INDEXED_COLS
    columns: frozenset[str] | None = None

    @classmethod
    def from_table_config(cls, config: Mapping[str, str | None]) -> _StatsConfig:
        columns = config.get("delta.dataSkippingStatsColumns")
        if columns:
            names = frozenset(c.strip().strip("`") for c in columns.split(",") if c.strip())
            return cls(columns=names)
        try:
            num = int(config.get("delta.dataSkippingNumIndexedCols") or _DEFAULT_INDEXED_COLS)
        except ValueError:
            num = _DEFAULT_INDEXED_COLS
        return cls(num_indexed=num)

    def wants(self, leaf: _Leaf) -> bool:
        if self.columns is not None:
            return leaf.path[0] in self.columns or ".".join(leaf.path) in self.columns
        return self.num_indexed < 0 or leaf.delta_index < self.num_indexed


def _file_stats(path: str, config: _StatsConfig) -> str:
    """Delta ``stats`` JSON for one Parquet file, from its footer only.

    numRecords always; minValues/maxValues/nullCount for the indexed primitive columns whose
    footer statistics are complete in every row group.
    """
    md = pq.read_metadata(path)
    stats: dict[str, Any] = {"numRecords": md.num_rows}
    leaves = _leaves(md.schema.to_arrow_schema())
    if len(leaves) != md.num_columns:
        return _json_text(stats)
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, Any] = {}
    for i, leaf in enumerate(leaves):
        if leaf.in_collection or not config.wants(leaf):
            continue
        null_count = 0
        nulls_known = True
        lo: Any = None
        hi: Any = None
        bounds_known = True
        for r in range(md.num_row_groups):
            group = md.row_group(r)
            s = group.column(i).statistics
            if s is None:
                nulls_known = bounds_known = False
                break
            if s.has_null_count:
                null_count += s.null_count
            else:
                nulls_known = False
            if s.has_min_max:
                low = _stat_value(leaf.type, s, is_max=False)
                high = _stat_value(leaf.type, s, is_max=True)
                if low is None or high is None:
                    bounds_known = False
                else:
                    lo = low if lo is None else min(lo, low)
                    hi = high if hi is None else max(hi, high)
            elif not (s.has_null_count and s.null_count == group.num_rows):
                bounds_known = False  # no bounds although the row group has values
        if nulls_known:
            _set_nested(nulls, leaf.path, null_count)
        if bounds_known and lo is not None and hi is not None:
            _set_nested(mins, leaf.path, lo)
            _set_nested(maxs, leaf.path, hi)
    stats["minValues"] = mins
    stats["maxValues"] = maxs
    stats["nullCount"] = nulls
    return _json_text(stats)


class DeltaRsStore(_StoreBase):
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
        return bool(DeltaTable.is_deltatable(_local_root(path)))

    def _open(self, root: str, version: int | None = None) -> DeltaTable:
        if not DeltaTable.is_deltatable(root):
            raise _missing_table(root)
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
        return int(self._open(_local_root(path)).version())

    def _commits(self, path: str) -> list[_Commit]:
        root = _local_root(path)
        commits = []
        for entry in self._open(root).history():
            metadata, write_id = _decode_metadata(entry.get("userMetadata"))
            commits.append(
                _Commit(
                    version=int(entry["version"]),
                    timestamp=_ms_to_utc(int(entry["timestamp"])),
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
        root = _local_root(path)
        if version is not None and timestamp is not None:
            raise TableError(f"Cannot read {root}: pass version or timestamp, not both.")
        table = self._open(root)
        if timestamp is not None:
            version = _version_at(self._commits(root), timestamp, root)
        if version is not None:
            _check_version(version, int(table.version()), root)
            table = self._open(root, version)
        schema = T.StructType.fromJson(json.loads(table.schema().to_json()))
        files = [local for local, _ in _data_files(table, root)]
        if not files:
            return self.spark.createDataFrame([], schema)
        df = (
            self.spark.read.schema(schema)
            .option("basePath", _spark_path(root, escape_glob=False))
            .parquet(*[_spark_path(f) for f in files])
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
    ) -> int:
        """Replace the rows of ``partition_values`` with ``df`` in one commit.

        Spark writes the files (distributed) into ``<root>/_staging/<write_id>/data/``; they are
        checked (partition values, schema), moved into ``<root>/<column>=<value>/`` and
        committed with ``deltalake``. The staging folder is always removed; files of a write
        that did not commit are deleted again. A write killed at any point (SIGKILL, lost
        machine) leaves the table at its previous version: readers see only committed files,
        and the next write removes its staging folder and moved but uncommitted files (its
        ``_owner.json`` and ``_manifest.json``; see :func:`_remove_leftovers`).

        Args:
            df: The new rows; every row's ``partition_column`` must be one of
                ``partition_values``. An empty ``df`` empties the partitions.
            path: Table root (local path).
            partition_column: The table's partition column.
            partition_values: The partitions to replace.
            metadata: Strings stored with the commit.
            table_properties: ``delta.*`` properties applied when the table is created.

        Returns:
            The committed version.

        Raises:
            TableError: Bad arguments, rows outside the partitions, schema mismatch (nothing
                committed), or a failed Parquet write.
            ConcurrentWriteError: The commit conflicted with another writer, or the committed
                partitions hold files this write did not add.
        """
        root = _local_root(path)
        values = _partition_strings(partition_values, root)
        _check_write_args(df, root, partition_column, table_properties)
        write_id = _new_write_id()
        user_metadata = _encode_metadata(metadata, write_id, root)
        # Cheap checks before Spark spends any work: Delta types, partitioning, table schema.
        df_schema = self._df_schema(df, root)
        if DeltaTable.is_deltatable(root):
            _check_table(
                DeltaTable(root), _to_delta_schema(df_schema, root), partition_column, root
            )
        else:
            _to_delta_schema(df_schema, root)
        staging_parent = os.path.join(root, STAGING_DIR)
        staging = os.path.join(staging_parent, write_id)
        _remove_leftovers(root, staging_parent, self.stale_staging_hours)
        moved: list[str] = []
        committed = False
        try:
            # The owner record lets the next writer tell a killed write from a running one.
            os.makedirs(staging)
            _write_json(os.path.join(staging, _OWNER_FILE), _owner_record(write_id))
            self._write_parquet(df, os.path.join(staging, _STAGED_DATA), partition_column, root)
            staged = _list_staged_files(os.path.join(staging, _STAGED_DATA), partition_column, root)
            _fault_point("staged")
            unexpected = sorted(
                {"null" if s.value is None else s.value for s in staged} - set(values)
            )
            if unexpected:
                raise TableError(
                    f"Cannot write {root}: the DataFrame has rows with {partition_column} = "
                    f"{', '.join(unexpected)}, outside the partition(s) being replaced "
                    f"({', '.join(values)}). Nothing was committed. Fix: set the column with "
                    f"F.lit(...) or filter the rows first."
                )
            # checked again from the written footers: that is what readers will see
            delta_schema = _to_delta_schema(
                self._new_schema(df_schema, staged, partition_column), root
            )
            table = DeltaTable(root) if DeltaTable.is_deltatable(root) else None
            if table is not None:
                _check_table(table, delta_schema, partition_column, root)
                config: Mapping[str, str | None] = table.metadata().configuration
            else:
                config = dict(table_properties or {})
            stats = self._stats(staged, _StatsConfig.from_table_config(config))
            # Written before the move: what a killed write leaves in the partition folders.
            _write_json(
                os.path.join(staging, _MANIFEST_FILE),
                {"files": [f"{s.dir_name}/{_final_name(s.name, write_id)}" for s in staged]},
            )
            actions = self._move(staged, root, partition_column, write_id, stats, moved)
            _fault_point("moved")
            version = self._commit(
                root,
                table,
                delta_schema,
                actions,
                partition_column,
                values,
                user_metadata,
                table_properties,
                write_id,
            )
            _fault_point("committed")
            committed = True
            self._verify(root, version, partition_column, values, moved)
            log.info(
                "committed %d file(s) to %s version %d (%s in %s)",
                len(actions),
                root,
                version,
                partition_column,
                values,
            )
            return version
        finally:
            # moved files first: the staging folder's manifest still lists them if this dies
            if not committed and moved and not self._is_committed(root, write_id):
                for file_path in moved:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(file_path)
                    _rmdir_if_empty(os.path.dirname(file_path))
            shutil.rmtree(staging, ignore_errors=True)
            _rmdir_if_empty(staging_parent)
            if not committed:
                _rmdir_if_empty(root)  # a first write that failed leaves no empty table folder

    def _write_parquet(self, df: DataFrame, staging: str, partition_column: str, root: str) -> None:
        """Spark writes the files (on the executors) with micro-second timestamps."""
        spark = df.sparkSession
        previous = spark.conf.get(_TIMESTAMP_CONF, None)
        if previous != "TIMESTAMP_MICROS":
            # INT96 timestamps have no usable statistics; never write them into a Delta table.
            spark.conf.set(_TIMESTAMP_CONF, "TIMESTAMP_MICROS")
        try:
            df.write.mode("errorifexists").partitionBy(partition_column).parquet(
                _spark_path(staging, escape_glob=False)
            )
        except Exception as exc:  # Py4J / PySpark errors: surface one clear line
            first = java_error_line(exc) or type(exc).__name__
            raise TableError(
                f"Writing the Parquet files for {root} failed: {first}. Nothing was committed."
            ) from exc
        finally:
            if previous != "TIMESTAMP_MICROS":
                if previous is None:
                    spark.conf.unset(_TIMESTAMP_CONF)
                else:
                    spark.conf.set(_TIMESTAMP_CONF, previous)

    @staticmethod
    def _df_schema(df: DataFrame, root: str) -> pa.Schema:
        """Arrow schema of ``df`` as Spark writes it to Parquet (UTC timestamps), all nullable."""
        from pyspark.sql.pandas.types import to_arrow_schema

        try:
            schema = to_arrow_schema(df.schema, timezone="UTC")
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise TableError(
                f"Cannot write {root}: the DataFrame schema cannot be mapped to Arrow/Delta "
                f"({exc}). Found: {df.schema.simpleString()}. Fix: cast those columns."
            ) from exc
        return pa.schema([_nullable_field(f) for f in schema])

    @staticmethod
    def _new_schema(
        df_schema: pa.Schema, staged: Sequence[_StagedFile], partition_column: str
    ) -> pa.Schema:
        """Arrow schema of the new files in ``df`` column order, every field nullable.

        Data columns come from a written Parquet footer (what readers will see); the partition
        column (not stored in the files), and everything when no file was written, from
        ``df_schema``.
        """
        if not staged:
            return df_schema
        file_schema = pq.read_schema(staged[0].path)
        fields = [
            df_schema.field(name) if name == partition_column else file_schema.field(name)
            for name in df_schema.names
        ]
        return pa.schema([_nullable_field(f) for f in fields])

    @staticmethod
    def _stats(staged: Sequence[_StagedFile], config: _StatsConfig) -> dict[str, str]:
        if not staged:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(staged))) as pool:
            results = pool.map(lambda s: _file_stats(s.path, config), staged)
            return {s.path: r for s, r in zip(staged, results, strict=True)}

    @staticmethod
    def _move(
        staged: Sequence[_StagedFile],
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
            name = _final_name(s.name, write_id)
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

    def _commit(
        self,
        root: str,
        table: DeltaTable | None,
        schema: DeltaSchema,
        actions: list[AddAction],
        partition_column: str,
        values: list[str],
        user_metadata: str,
        table_properties: Mapping[str, str] | None,
        write_id: str,
    ) -> int:
        props = CommitProperties(custom_metadata={"userMetadata": user_metadata})
        if table is None:
            try:
                create_table_with_add_actions(
                    root,
                    schema,
                    actions,
                    mode="error",
                    partition_by=[partition_column],
                    configuration=dict(table_properties) if table_properties else None,
                    commit_properties=props,
                )
                return self._find_version(root, write_id, after=-1)
            except DeltaError as exc:
                if not DeltaTable.is_deltatable(root):
                    raise TableError(f"Creating the Delta table at {root} failed: {exc}") from exc
                table = DeltaTable(root)  # another writer created it meanwhile: overwrite below
        # The overwrite removes what *this snapshot* holds in the partitions: refresh it now, so
        # files another writer added meanwhile are removed too (verified after the commit).
        # A commit that loses a race is retried on a fresh snapshot: for other partitions it
        # then simply lands; for the same partition the later write replaces it as a whole.
        filters = (
            [(partition_column, "=", values[0])]
            if len(values) == 1
            else [(partition_column, "in", values)]
        )
        tx_actions: list[AddAction | RemoveAction] = list(actions)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            table.update_incremental()
            _check_table(table, schema, partition_column, root)
            read_version = int(table.version())
            try:
                table.create_write_transaction(
                    tx_actions,
                    mode="overwrite",
                    schema=table.schema(),
                    partition_by=[partition_column],
                    partition_filters=filters,
                    commit_properties=props,
                )
                break
            except CommitFailedError as exc:
                if self._is_committed(root, write_id):
                    break
                if attempt == COMMIT_ATTEMPTS:
                    raise ConcurrentWriteError(
                        f"Another writer changed {root} while this write was committing "
                        f"({attempt} attempts; last: {exc}). Nothing was committed. "
                        "Fix: rerun the write."
                    ) from exc
                log.info("commit to %s lost a race (attempt %d): %s; retrying", root, attempt, exc)
                time.sleep(0.2 * attempt)
                table = DeltaTable(root)
            except DeltaError as exc:
                raise TableError(f"Committing to the Delta table at {root} failed: {exc}") from exc
        return self._find_version(root, write_id, after=read_version)

    def _find_version(self, root: str, write_id: str, *, after: int) -> int:
        """The version of the commit carrying ``write_id`` (deltalake does not return it)."""
        table = DeltaTable(root)
        latest = int(table.version())
        for entry in table.history(limit=max(latest - after, 1)):
            if _decode_metadata(entry.get("userMetadata"))[1] == write_id:
                return int(entry["version"])
        for commit in self._commits(root):
            if commit.write_id == write_id:
                return commit.version
        raise TableError(f"The commit of write {write_id} was not found in the history of {root}.")

    def _is_committed(self, root: str, write_id: str) -> bool:
        try:
            return any(c.write_id == write_id for c in self._commits(root))
        except TableError:
            return False

    @staticmethod
    def _verify(
        root: str, version: int, partition_column: str, values: list[str], moved: list[str]
    ) -> None:
        """After the commit, the partitions must hold exactly the files of this write."""
        snapshot = DeltaTable(root, version=version)
        wanted = set(values)
        actual = {
            local
            for local, part in _data_files(snapshot, root)
            if _partition_text(part.get(partition_column)) in wanted
        }
        expected = {os.path.normpath(p) for p in moved}
        if actual != expected:
            extra = sorted(actual - expected)
            lost = sorted(expected - actual)
            raise ConcurrentWriteError(
                f"Version {version} of {root} was committed, but partition(s) {partition_column} "
                f"= {', '.join(values)} do not hold exactly this write's files: {len(extra)} "
                f"other file(s) kept (e.g. {extra[:3]}), {len(lost)} of this write's missing "
                f"(e.g. {lost[:3]}). Another writer changed the same partition at the same "
                "time. Fix: let one job write a partition at a time and rerun this write."
            )


# --------------------------------------------------------------------------------------------
# Native Delta (jars) backend
# --------------------------------------------------------------------------------------------


class SparkDeltaStore(_StoreBase):
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
                f"or the io.delta classes do not load. {_NO_JARS_FIX}"
            )
        super().__init__(spark)

    def _table(self, path: str) -> Any:
        from delta.tables import DeltaTable as SparkDeltaTable

        if not SparkDeltaTable.isDeltaTable(self.spark, path):
            raise _missing_table(path)
        return SparkDeltaTable.forPath(self.spark, path)

    def exists(self, path: str) -> bool:
        """True when a Delta table exists at ``path``."""
        from delta.tables import DeltaTable as SparkDeltaTable

        return bool(SparkDeltaTable.isDeltaTable(self.spark, path))

    def _commits(self, path: str, limit: int | None = None) -> list[_Commit]:
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
            metadata, write_id = _decode_metadata(row["userMetadata"])
            commits.append(
                _Commit(
                    version=int(row["version"]),
                    timestamp=_ms_to_utc(int(row["ts_ms"])),
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
        commits = self._commits(path)
        if timestamp is not None:
            version = _version_at(commits, timestamp, path)
        reader = self.spark.read.format("delta")
        if version is not None:
            _check_version(version, commits[0].version, path)
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
    ) -> int:
        """Replace the rows of ``partition_values`` with ``df`` (``replaceWhere``), one commit.

        Delta checks that every row matches the partitions and that the schema matches the
        table before anything is committed. ``table_properties`` are applied when the table is
        created (``delta.*`` writer options).

        Returns:
            The committed version.

        Raises:
            TableError: Bad arguments, schema mismatch or rows outside the partitions.
            ConcurrentWriteError: Delta reported a conflicting concurrent commit.
        """
        values = _partition_strings(partition_values, path)
        _check_write_args(df, path, partition_column, table_properties)
        write_id = _new_write_id()
        user_metadata = _encode_metadata(metadata, write_id, path)
        new_fields = _spark_fields(df.schema)
        _reject_timestamp_ntz(new_fields, path)
        exists = self.exists(path)
        if exists:  # same checks and messages as the delta-rs backend, before any work
            table = self._table(path)
            detail = table.detail().select("partitionColumns").first()
            _check_layout(
                path,
                self.version(path),
                list(detail[0]) if detail else [],
                partition_column,
                _spark_fields(table.toDF().schema),
                new_fields,
            )
        type_name = df.schema[partition_column].dataType.simpleString()
        literals = ", ".join(
            "CAST('" + v.replace("\\", "\\\\").replace("'", "\\'") + f"' AS {type_name})"
            for v in values
        )
        writer = (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"{quote(partition_column)} IN ({literals})")
            # the session may default to dynamic overwrite, which cannot go with replaceWhere
            .option("partitionOverwriteMode", "static")
            .option("userMetadata", user_metadata)
            .partitionBy(partition_column)
        )
        if not exists:
            for key, value in (table_properties or {}).items():
                writer = writer.option(key, value)  # delta.* options become table properties
        try:
            writer.save(path)
        except Exception as exc:  # AnalysisException, Py4JJavaError, ...
            text = str(exc)
            first = java_error_line(exc) or type(exc).__name__
            if "Concurrent" in text or "DELTA_CONCURRENT" in text:
                raise ConcurrentWriteError(
                    f"Another writer changed {path} while this write was committing: {first}. "
                    "Fix: rerun the write."
                ) from exc
            raise TableError(f"Writing the Delta table at {path} failed: {first}") from exc
        for commit in self._commits(path, limit=50):
            if commit.write_id == write_id:
                return commit.version
        for commit in self._commits(path):
            if commit.write_id == write_id:
                return commit.version
        raise TableError(f"The commit of write {write_id} was not found in the history of {path}.")
