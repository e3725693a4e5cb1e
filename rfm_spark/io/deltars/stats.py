"""Delta file statistics (numRecords, min/max, null counts) read from Parquet footers.

delta-spark computes them while writing; the delta-rs backend commits files Spark wrote, so it
reads them back from each file's footer, the way delta-spark would have written them.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rfm_spark.io.commits import ms_to_utc

_DEFAULT_INDEXED_COLS = 32  # delta.dataSkippingNumIndexedCols default
_STATS_STRING_PREFIX = 32  # delta-spark's prefix length for string min/max
_MAX_CODE_POINT = "\U0010ffff"


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
    value = ms_to_utc(ms)
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
class StatsConfig:
    num_indexed: int = _DEFAULT_INDEXED_COLS
    columns: frozenset[str] | None = None

    @classmethod
    def from_table_config(cls, config: Mapping[str, str | None]) -> StatsConfig:
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


def file_stats(path: str, config: StatsConfig) -> str:
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
