"""``--json``: a run's result as one JSON object on stdout, for orchestrators.

Airflow, Databricks Workflows and shell scripts branch on what a run did (its version, its
counts, its reconciliation) without parsing the human report. The object always has
``command`` and ``status`` ("ok"); the rest is the run's result with dates as ISO text.
Progress lines and failures stay on stderr, so stdout holds exactly one JSON document.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import decimal
import json
from typing import Any


def json_option(p: argparse.ArgumentParser) -> None:
    """``--json`` on a command that runs and commits something."""
    p.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on stdout (run id, table versions, counts, "
        "reconciliation) instead of the report, for orchestrators",
    )


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses and mappings as objects (keys as text), dates
    as ISO text, decimals and numpy numbers as numbers, tuples and sets as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _key(key: Any) -> str:
    if isinstance(key, tuple):
        return "/".join(str(k) for k in key)
    return key.isoformat() if isinstance(key, (dt.date, dt.datetime)) else str(key)


def emit(command: str, result: Any, **extra: Any) -> None:
    """Print ``result`` (and ``extra``) as one JSON object."""
    body = plain(result) if result is not None else {}
    if not isinstance(body, dict):
        body = {"result": body}
    document = {"command": command, "status": "ok", **body, **plain(extra)}
    print(json.dumps(document, sort_keys=True, allow_nan=False, default=str))
