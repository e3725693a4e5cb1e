"""Table history and retention: list commits with their run metadata, VACUUM safely."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from rfm_spark.config import HistorySettings
from rfm_spark.errors import UsageError
from rfm_spark.io.store import TableStore


def history_rows(commits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten ``TableStore.history()`` into rows of :data:`HISTORY_COLUMNS` (newest first)."""
    rows = []
    for c in commits:
        meta = c.get("metadata") or {}
        ts = c.get("timestamp")
        rows.append(
            {
                "version": c["version"],
                "committed_at": ts.strftime("%Y-%m-%d %H:%M:%S")
                if isinstance(ts, dt.datetime)
                else ts,
                "operation": c.get("operation", ""),
                "snapshot_date": meta.get("snapshot_date", ""),
                "run_id": meta.get("run_id", ""),
                "scheme": meta.get("scheme", ""),
                "scoring": meta.get("scoring_method", ""),
                "input_rows": meta.get("input_rows", ""),
                "output_rows": meta.get("output_rows", ""),
            }
        )
    return rows


def run_metadata(commit: dict[str, Any]) -> dict[str, Any]:
    """A commit's metadata with its JSON fields (scoring, reconciliation) decoded."""
    meta: dict[str, Any] = dict(commit.get("metadata") or {})
    for key in ("scoring", "reconciliation", "snapshots"):
        if isinstance(meta.get(key), str):
            with contextlib.suppress(ValueError):
                meta[key] = json.loads(meta[key])
    return meta


@dataclass(frozen=True)
class VacuumResult:
    retain_hours: int
    dry_run: bool
    files: list[str]


def vacuum(
    store: TableStore,
    path: str,
    settings: HistorySettings,
    *,
    retain_hours: int | None = None,
    dry_run: bool = True,
) -> VacuumResult:
    """VACUUM the table, never cutting into the transition window plus its margin.

    Args:
        store: the table store (Delta's own VACUUM).
        path: table root.
        settings: the configured history window.
        retain_hours: keep removed files this long; default and minimum
            ``settings.retention_days * 24``.
        dry_run: only list what would be deleted (the default).

    Raises:
        UsageError: ``retain_hours`` is shorter than the configured window.
        TableError: no table at ``path``.
    """
    floor = settings.retention_days * 24
    hours = floor if retain_hours is None else retain_hours
    if hours < floor:
        raise UsageError(
            f"--retain-hours {hours} would cut into the {settings.transition_days}-day transition "
            f"window plus {settings.margin_days} days of margin; use at least {floor} "
            "(or lower history.transition_days / history.margin_days in the config)"
        )
    files = store.vacuum(path, retain_hours=hours, dry_run=dry_run)
    return VacuumResult(retain_hours=hours, dry_run=dry_run, files=sorted(files))
