"""Schema and partitioning checks run before anything is committed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import types as T

from rfm_spark.errors import TableError


def strip_type(t: Any) -> Any:
    """A Delta JSON type without nullability and metadata, for comparisons."""
    if isinstance(t, dict):
        drop = {"nullable", "containsNull", "valueContainsNull", "metadata"}
        return {k: strip_type(v) for k, v in t.items() if k not in drop}
    if isinstance(t, list):
        return [strip_type(v) for v in t]
    return t


def type_text(t: Any) -> str:
    return t if isinstance(t, str) else json.dumps(strip_type(t), sort_keys=True)


def check_layout(
    root: str,
    version: Callable[[], int],
    partition_columns: Sequence[str],
    partition_column: str,
    have: Mapping[str, str],
    new: Mapping[str, str],
) -> list[str]:
    """Fail before committing when partitioning or column types differ from the table's.

    New columns are the one difference allowed: a later version of the product adds a column
    (``attribute_segments``) to a table an earlier one created, and the write adds it to the
    table (older rows read null). A missing column or a changed type is refused.

    Args:
        root: Table path, for the message.
        version: The table's current version, asked only for an error message (a history
            history read).
        partition_columns: The table's partition columns.
        partition_column: The column this write partitions by.
        have: Table column name -> canonical type text.
        new: New data column name -> canonical type text.

    Returns:
        The columns the write adds to the table (empty when the schemas are equal).
    """
    parts = list(partition_columns)
    if parts != [partition_column]:
        raise TableError(
            f"Cannot write {root}: the table is partitioned by {parts or '(nothing)'}, not "
            f"[{partition_column!r}]. Nothing was committed (table stays at version {version()}). "
            "Fix: use the table's partition column, or another table path."
        )
    missing = [n for n in have if n not in new]
    extra = [n for n in new if n not in have]
    changed = [
        f"{n} (table {have[n]}, new {new[n]})" for n in have if n in new and have[n] != new[n]
    ]
    if missing or changed:
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            problems.append(f"new column(s): {', '.join(extra)}")
        if changed:
            problems.append(f"type change(s): {'; '.join(changed)}")
        table_cols = ", ".join(f"{n} {t}" for n, t in have.items())
        raise TableError(
            f"Schema of the new data does not match the Delta table at {root}: "
            f"{'; '.join(problems)}. Nothing was committed (table stays at version {version()}). "
            f"Fix: select and cast the DataFrame to the table schema ({table_cols}), or write "
            "to a new table."
        )
    return extra


def spark_fields(schema: T.StructType) -> dict[str, str]:
    """Column name -> canonical type text (Spark's JSON types are Delta's schema types)."""
    return {f.name: type_text(strip_type(f.dataType.jsonValue())) for f in schema.fields}


def reject_timestamp_ntz(fields: Mapping[str, str], root: str) -> None:
    ntz = [name for name, t in fields.items() if "timestamp_ntz" in t]
    if ntz:
        raise TableError(
            f"Cannot write {root}: column(s) {', '.join(ntz)} are TIMESTAMP_NTZ, which lifts the "
            "table protocol to reader 3 / writer 7 (the timestampNtz feature), which older "
            "readers of the warehouse cannot read. Fix: cast them to TIMESTAMP, "
            "e.g. F.col(c).cast('timestamp')."
        )
