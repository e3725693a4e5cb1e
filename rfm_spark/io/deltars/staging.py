"""Staging folders of the delta-rs backend, and the cleanup of what killed writers leave.

Spark writes a write's files into ``<root>/_staging/<write_id>/data/``; the driver moves them into
the partition folders and commits. An ``_owner.json`` (host, pid, process start time) tells the
next writer a killed write from a running one, and a ``_manifest.json`` lists the files a write
is about to move, so that files of a write killed between move and commit can be removed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from pyspark.sql import DataFrame

from rfm_spark.errors import TableError, java_error_line
from rfm_spark.io.commits import decode_metadata

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
_TIMESTAMP_CONF = "spark.sql.parquet.outputTimestampType"
FAULT_ENV = "RFM_SPARK_FAULT"  # testing aid, see fault_point
OWNER_FILE = "_owner.json"  # in a staging folder: the writing process
MANIFEST_FILE = "_manifest.json"  # in a staging folder: files about to be moved into the table
STAGED_DATA = "data"  # in a staging folder: what Spark writes
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

_UTC = datetime.timezone.utc
_GLOB_CHARS = "{}[]*?\\"
_UNSAFE_PATH_CHARS = "?#%\\"


@dataclass(frozen=True)
class StagedFile:
    dir_name: str  # directory name as Spark wrote it (escaped), e.g. snapshot_date=2024-01-31
    value: str | None  # decoded partition value; None for __HIVE_DEFAULT_PARTITION__
    path: str  # absolute path in the staging folder
    name: str  # file name


def local_root(path: str) -> str:
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


def spark_path(local_path: str, *, escape_glob: bool = True) -> str:
    """A fully qualified local path for Spark; glob characters escaped so Spark reads it as is."""
    if escape_glob:
        local_path = "".join("\\" + ch if ch in _GLOB_CHARS else ch for ch in local_path)
    return "file://" + local_path


def strip_file_uri(uri: str) -> str:
    if uri.startswith("file://"):
        return unquote(uri[len("file://") :])
    if uri.startswith("file:"):
        return unquote(uri[len("file:") :])
    return uri


def data_files(table: DeltaTable, root: str) -> list[tuple[str, dict[str, Any]]]:
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
            local = strip_file_uri(rel)
        else:
            local = os.path.join(root, unquote(rel))
        out.append((os.path.normpath(local), part or {}))
    return out


def partition_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def newest_mtime(path: str) -> float:
    """Newest modification time of ``path`` and the folders below it (a running Spark job keeps
    creating task folders, so an active staging folder always looks recent)."""
    newest = os.stat(path).st_mtime
    for folder, _, _ in os.walk(path):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, os.stat(folder).st_mtime)
    return newest


def fault_point(name: str) -> None:
    """Testing aid for the crash tests: when the environment variable ``RFM_SPARK_FAULT`` names
    this point, the process kills itself with SIGKILL here (no cleanup, no ``finally``)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_json(path: str, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` so that readers see the whole file or none (temporary file + rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
    os.replace(tmp, path)


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of ``pid`` from /proc; None if unknown."""
    text = read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 1 :].split()  # the command name may hold spaces and ')'
    try:
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
    except (IndexError, ValueError):
        return None


def machine() -> dict[str, str | None]:
    """Where pids of this process mean something: host name, boot id and pid namespace."""
    pid_ns = None
    with contextlib.suppress(OSError):
        pid_ns = os.readlink("/proc/self/ns/pid")
    return {
        "host": socket.gethostname(),
        "boot_id": read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
    }


def owner_record(write_id: str) -> dict[str, Any]:
    """Who writes a staging folder: this process on this machine (see :func:`owner_alive`)."""
    stat = proc_stat(os.getpid())
    return {
        **machine(),
        "pid": os.getpid(),
        "start": stat[1] if stat else None,
        "write_id": write_id,
        "created": datetime.datetime.now(_UTC).isoformat(),
    }


def owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """Is the writer of a staging folder still running? None when it cannot be told here
    (another machine or container, or no owner record): then only the folder's age counts."""
    here = machine()
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
    stat = proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False  # exited, not yet reaped
    started = owner.get("start")
    return not (isinstance(started, int) and start != started)  # else: the pid was reused


def committed_files(root: str, write_id: str) -> tuple[bool, set[str]] | None:
    """(is ``write_id`` committed, local paths of the latest snapshot's files); ``(False,
    set())`` without a table; None when the log cannot be read (then nothing may be deleted)."""
    if not DeltaTable.is_deltatable(root):
        return False, set()
    try:
        table = DeltaTable(root)
        committed = any(
            decode_metadata(entry.get("userMetadata"))[1] == write_id for entry in table.history()
        )
        return committed, {local for local, _ in data_files(table, root)}
    except (DeltaError, OSError) as exc:
        log.warning("cannot read the Delta log of %s to clean up (%s); files kept", root, exc)
        return None


def remove_leftovers(root: str, staging_parent: str, max_age_hours: float) -> None:
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
            owner = read_json(os.path.join(full, OWNER_FILE)) if os.path.isdir(full) else None
            alive = owner_alive(owner) if owner else None
            if alive or (alive is None and newest_mtime(full) >= cutoff):
                continue
            if not os.path.isdir(full):
                os.remove(full)
                continue
        except FileNotFoundError:
            continue  # another writer cleaned it meanwhile
        manifest = read_json(os.path.join(full, MANIFEST_FILE)) or {}
        paths = [p for p in manifest.get("files", []) if isinstance(p, str)]
        removed = 0
        committed = False
        if paths:
            state = committed_files(root, write_id)
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
                rmdir_if_empty(os.path.dirname(target))
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


def rmdir_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def list_staged_files(staging: str, partition_column: str, root: str) -> list[StagedFile]:
    """The Parquet files Spark wrote under ``staging`` (``_SUCCESS``, ``.crc`` etc. skipped)."""
    if not os.path.isdir(staging):
        return []
    files: list[StagedFile] = []
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
            files.append(StagedFile(entry, value, os.path.join(full, file_name), file_name))
    return files


def final_name(name: str, write_id: str) -> str:
    """``part-00000-<uuid>.c000.snappy.parquet`` -> ``part-00000-<write_id>-<uuid>...``."""
    if name.startswith("part-"):
        head, _, rest = name[len("part-") :].partition("-")
        if rest:
            return f"part-{head}-{write_id}-{rest}"
    return f"part-{write_id}-{name}"


def write_staged_parquet(df: DataFrame, staging: str, partition_column: str, root: str) -> None:
    """Spark writes the files (on the executors) with micro-second timestamps, whatever the
    session says: INT96 timestamps have no usable statistics and never go into a Delta table.
    The write option overrides the session setting for this write only."""
    try:
        df.write.mode("errorifexists").option(_TIMESTAMP_CONF, "TIMESTAMP_MICROS").partitionBy(
            partition_column
        ).parquet(spark_path(staging, escape_glob=False))
    except Exception as exc:  # Py4J / PySpark errors: surface one clear line
        first = java_error_line(exc) or type(exc).__name__
        raise TableError(
            f"Writing the Parquet files for {root} failed: {first}. Nothing was committed."
        ) from exc
