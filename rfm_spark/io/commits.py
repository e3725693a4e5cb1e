"""Commits as the table store sees them: write ids and run metadata in ``userMetadata``, the
idempotent-write identity, time travel by timestamp, and the checks of a write's arguments.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from rfm_spark.errors import TableError, UsageError

log = logging.getLogger(__name__)

WRITE_ID_KEY = "rfm_write_id"
TXN_KEY = "rfm_txn"
TXN_FOR_KEY = "rfm_txn_for"

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


@dataclass(frozen=True)
class Txn:
    """An idempotent write: Delta's ``txnAppId`` / ``txnVersion``.

    A table remembers the highest version committed for each application id; a write whose
    version is not above it is skipped, so a retried run (same ``app_id``) never commits twice.
    ``purpose`` (the command and its dates) is kept with the commit, so that a key reused for
    another run is refused instead of silently writing nothing.
    """

    app_id: str
    version: int = 0
    purpose: str = ""

    @property
    def key(self) -> str:
        """How the commit metadata records it (under ``rfm_txn``), to find that commit again."""
        return f"{self.app_id}@{self.version}"


@dataclass(frozen=True)
class Commit:
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


def new_write_id() -> str:
    stamp = datetime.datetime.now(_UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:12]}"


def as_utc(ts: datetime.datetime) -> datetime.datetime:
    return ts.replace(tzinfo=_UTC) if ts.tzinfo is None else ts.astimezone(_UTC)


def ms_to_utc(ms: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(milliseconds=ms)


def partition_strings(values: Sequence[datetime.date | str], path: str) -> list[str]:
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


def check_write_args(
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


def encode_metadata(
    metadata: Mapping[str, str] | None, write_id: str, path: str, txn: Txn | None = None
) -> str:
    """The ``userMetadata`` string: a JSON object of strings plus the reserved write id (and
    the idempotent write's key)."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or key in (WRITE_ID_KEY, TXN_KEY, TXN_FOR_KEY):
            raise TableError(
                f"Cannot write {path}: metadata key {key!r} is not allowed (keys must be strings, "
                f"{WRITE_ID_KEY!r}, {TXN_KEY!r} and {TXN_FOR_KEY!r} are reserved). Fix: rename "
                "the key."
            )
        out[key] = value if isinstance(value, str) else str(value)
    out[WRITE_ID_KEY] = write_id
    if txn is not None:
        out[TXN_KEY] = txn.key
        if txn.purpose:
            out[TXN_FOR_KEY] = txn.purpose
    return json.dumps(out, sort_keys=True, ensure_ascii=False)


def decode_metadata(raw: object) -> tuple[dict[str, str], str | None]:
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


def version_at(commits: Sequence[Commit], timestamp: datetime.datetime, path: str) -> int:
    """Newest version committed at or before ``timestamp``; TableError if before the first."""
    if not isinstance(timestamp, datetime.datetime):
        raise TableError(
            f"Cannot time travel {path}: timestamp must be a datetime.datetime, got "
            f"{type(timestamp).__name__}. Fix: pass e.g. datetime.datetime(2024, 1, 31, tzinfo=UTC)."
        )
    ts = as_utc(timestamp)
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


def check_purpose(commit: Commit, txn: Txn, path: str) -> None:
    """Refuse a write whose idempotent identity an earlier commit used for another purpose.

    Raises:
        UsageError: The earlier commit of ``txn`` was made for another command or date.
    """
    earlier = commit.metadata.get(TXN_FOR_KEY, "")
    if txn.purpose and earlier and earlier != txn.purpose:
        key = txn.app_id.removeprefix("rfm-spark:")
        raise UsageError(
            f"the idempotency key {key!r} was already used for {earlier} (version "
            f"{commit.version} of {path}), so this {txn.purpose} would write nothing. Give each "
            "run its own key, e.g. the orchestrator's run id, which differs per date and task"
        )


def check_version(version: int, latest: int, path: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
        raise TableError(
            f"Cannot read {path} at version {version!r}: versions go from 0 to {latest}. "
            "Fix: pass a version in that range (see history())."
        )


def missing_table(path: str) -> TableError:
    return TableError(
        f"No Delta table at {path} (no _delta_log found). Fix: check the path or warehouse "
        "directory, or write the table first."
    )
