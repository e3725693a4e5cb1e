"""Arrow and Delta schema helpers of the delta-rs backend."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from pyspark.sql import DataFrame

from rfm_spark.errors import TableError
from rfm_spark.io.deltars.staging import StagedFile
from rfm_spark.io.layout import check_layout, reject_timestamp_ntz, strip_type, type_text


def nullable_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([nullable_field(t.field(i)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(nullable_type(t.key_type), nullable_field(t.item_field))
    if pa.types.is_large_list(t):
        return pa.large_list(nullable_field(t.value_field))
    if pa.types.is_list(t):
        return pa.list_(nullable_field(t.value_field))
    return t


def nullable_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, nullable_type(f.type), nullable=True)


def delta_fields(schema: DeltaSchema) -> dict[str, str]:
    """Column name -> canonical Delta type text."""
    fields = json.loads(schema.to_json())["fields"]
    return {f["name"]: type_text(strip_type(f["type"])) for f in fields}


def to_delta_schema(schema: pa.Schema, root: str) -> DeltaSchema:
    try:
        delta_schema = DeltaSchema.from_arrow(schema)
    except Exception as exc:  # deltalake raises several internal error types here
        raise TableError(
            f"Cannot write {root}: the DataFrame schema has no Delta equivalent ({exc}). "
            f"Found: {schema}. Fix: cast unsupported columns (e.g. intervals) to supported types."
        ) from exc
    reject_timestamp_ntz(delta_fields(delta_schema), root)
    return delta_schema


def check_table(
    table: DeltaTable, schema: DeltaSchema, partition_column: str, root: str
) -> list[str]:
    """:func:`check_layout` of a ``deltalake`` table against the new data's Delta schema: the
    columns the write adds."""
    return check_layout(
        root,
        lambda: int(table.version()),
        table.metadata().partition_columns,
        partition_column,
        delta_fields(table.schema()),
        delta_fields(schema),
    )


def arrow_schema_of(df: DataFrame, root: str) -> pa.Schema:
    """Arrow schema of ``df`` as Spark writes it to Parquet (UTC timestamps), all nullable."""
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        schema = to_arrow_schema(df.schema, timezone="UTC")
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise TableError(
            f"Cannot write {root}: the DataFrame schema cannot be mapped to Arrow/Delta "
            f"({exc}). Found: {df.schema.simpleString()}. Fix: cast those columns."
        ) from exc
    return pa.schema([nullable_field(f) for f in schema])


def files_schema(
    df_schema: pa.Schema, staged: Sequence[StagedFile], partition_column: str
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
    return pa.schema([nullable_field(f) for f in fields])


def with_added_columns(table: DeltaTable, schema: DeltaSchema, added: list[str]) -> DeltaSchema:
    """The table's schema with the ``added`` fields of ``schema`` at its end."""
    if not added:
        return table.schema()
    have = json.loads(table.schema().to_json())
    new = {f["name"]: f for f in json.loads(schema.to_json())["fields"]}
    have["fields"] += [new[name] for name in added]
    return DeltaSchema.from_json(json.dumps(have))
