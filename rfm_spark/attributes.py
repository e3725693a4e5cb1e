"""Attribute segments: named groups of customers by who they are and how they behave.

Rules live in YAML (a built-in set by name, ``profile``, or a file), loaded into strict models
like the RFM schemes and the campaign file, so that a bad key fails before any work. Each
dimension reads one column, from the customers table (age, country, interest tags) or from the
snapshot's own features (``avg_order_value``, ``tenure_days``: behaviour in the transactions),
and gives each customer at most one segment of that dimension:

- ``bands``: segment name -> lower bound, ascending; a value below the first bound has none;
- ``groups``: segment name -> values, the first group the value is in (for an array column such
  as interest tags, the first group any of its values is in), else ``otherwise`` (if set);
- neither: the value itself.

:func:`assign_attributes` adds ``attribute_segments``, a map from dimension to segment, so the
table's schema does not change with the rules; a customer with no customers row, or a null
value, has no entry for that dimension. :func:`crosstab` counts RFM segments against one
dimension. Both are DataFrame transforms with no action.
"""

from __future__ import annotations

import itertools
import re
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.behaviour import BEHAVIOUR_COLUMNS
from rfm_spark.config import format_error, read_mapping
from rfm_spark.errors import ConfigError
from rfm_spark.sqltext import exact_col

ATTRIBUTES_COLUMN = "attribute_segments"
BUILTIN_RULES = ("profile",)
# snapshot columns a rule may read (behaviour in the transactions); others come from customers
SNAPSHOT_FEATURES = (
    "recency_days", "frequency", "monetary", "purchase_days", "avg_order_value", "tenure_days",
)  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Dimension(BaseModel):
    """One dimension: the column it reads and how values become segment names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    bands: dict[str, float] | None = None
    groups: dict[str, list[str]] | None = None
    otherwise: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Dimension:
        if self.bands is not None and self.groups is not None:
            raise ValueError("give bands or groups, not both")
        if self.otherwise is not None and self.groups is None:
            raise ValueError("'otherwise' goes with groups")
        if self.bands is not None:
            bounds = list(self.bands.values())
            if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)):
                raise ValueError(f"bands need strictly ascending lower bounds, got {bounds}")
        if self.groups is not None:
            if not self.groups or any(not v for v in self.groups.values()):
                raise ValueError("every group lists at least one value")
            seen: dict[str, str] = {}
            for name, values in self.groups.items():
                for v in values:
                    if v in seen:
                        raise ValueError(f"value {v!r} is in groups {seen[v]!r} and {name!r}")
                    seen[v] = name
        return self


class AttributeRules(BaseModel):
    """A named set of dimensions, each a key of ``attribute_segments``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    dimensions: dict[str, Dimension] = Field(min_length=1)

    @field_validator("dimensions")
    @classmethod
    def _names(cls, v: dict[str, Dimension]) -> dict[str, Dimension]:
        bad = [k for k in v if not _NAME.match(k)]
        if bad:
            raise ValueError(f"dimension names are identifiers (letters, digits, _): {bad}")
        return v

    def customer_columns(self) -> list[str]:
        """The customers-table columns the rules read (sorted; not the snapshot's features or
        the behaviour columns)."""
        others = set(SNAPSHOT_FEATURES) | set(BEHAVIOUR_COLUMNS)
        return sorted({d.column for d in self.dimensions.values()} - others)

    def behaviour_columns(self) -> list[str]:
        """The :data:`~rfm_spark.behaviour.BEHAVIOUR_COLUMNS` the rules read (sorted)."""
        return sorted({d.column for d in self.dimensions.values()} & set(BEHAVIOUR_COLUMNS))


def load_attribute_rules(name_or_path: str) -> AttributeRules:
    """A built-in rule set by name (``profile``) or a YAML file by path.

    Raises:
        ConfigError: Unknown name, missing file, not YAML, or a bad key (named with its place).
    """
    if name_or_path in BUILTIN_RULES:
        text = resources.files("rfm_spark").joinpath(f"schemes/attributes-{name_or_path}.yaml")
        data, source = yaml.safe_load(text.read_text()), f"built-in attribute rules {name_or_path}"
    elif not Path(name_or_path).is_file():
        raise ConfigError(
            f"segments.attributes {name_or_path!r} is neither built-in "
            f"({', '.join(BUILTIN_RULES)}) nor an existing YAML file"
        )
    else:
        data = read_mapping(name_or_path, "attribute rules", "segments.attributes")
        source = name_or_path
    try:
        return AttributeRules.model_validate(data)
    except ValidationError as exc:
        message = format_error(exc, source, "attribute rules", "docs/attributes.md")
        raise ConfigError(message) from None


def _segment_of(dim: Dimension, value: Column, is_array: bool) -> Column:
    """The segment name of ``value`` under ``dim`` (null when none applies)."""
    if dim.bands is not None:
        out = F.lit(None).cast("string")
        for name, bound in dim.bands.items():  # ascending: the last bound reached wins
            out = F.when(value >= F.lit(bound), F.lit(name)).otherwise(out)
        return out
    if dim.groups is None:
        return value.cast("string")
    out = F.lit(dim.otherwise).cast("string")
    for name, values in reversed(dim.groups.items()):  # the first group in the file wins
        members = F.array(*[F.lit(v) for v in values])
        hit = F.arrays_overlap(value, members) if is_array else value.cast("string").isin(values)
        out = F.when(hit, F.lit(name)).otherwise(out)
    return F.when(value.isNotNull(), out)


def assign_attributes(
    rows: DataFrame,
    rules: AttributeRules,
    customers: DataFrame | None,
    behaviour: DataFrame | None = None,
) -> DataFrame:
    """Set :data:`ATTRIBUTES_COLUMN` of snapshot rows (left joins with the sources).

    Args:
        rows: Snapshot rows with ``customer_id`` (and ``snapshot_date``) and the features.
        rules: The attribute rules.
        customers: ``customer_id`` and :meth:`AttributeRules.customer_columns`, one row per
            customer; None leaves the dimensions that need it out of every map.
        behaviour: ``customer_id``, ``snapshot_date`` and
            :meth:`AttributeRules.behaviour_columns` (:mod:`rfm_spark.behaviour`), or None.

    Raises:
        ConfigError: A rule reads a column that neither the snapshot nor a source has.
    """
    have = set(rows.columns)
    sources = [(customers, ["customer_id"]), (behaviour, ["customer_id", "snapshot_date"])]
    for source, keys in sources:
        if source is not None:
            extra = [c for c in source.columns if c not in keys and c not in have]
            rows = rows.join(source.select(*keys, *extra), on=keys, how="left")
    types = {f.name: f.dataType for f in rows.schema.fields}
    entries = []
    for key, dim in rules.dimensions.items():
        if dim.column not in types:
            if customers is None and dim.column in rules.customer_columns():
                continue  # no customers table: that dimension stays out
            raise ConfigError(
                f"attribute rules {rules.name!r}, dimension {key!r}: no column {dim.column!r} "
                "in the snapshot or the customers table"
            )
        is_array = isinstance(types[dim.column], T.ArrayType)
        entries += [F.lit(key), _segment_of(dim, exact_col(dim.column), is_array)]
    mapped = F.map_filter(F.create_map(*entries), lambda _, v: v.isNotNull()) if entries else None
    out = rows.withColumn(ATTRIBUTES_COLUMN, mapped if mapped is not None else F.lit(None))
    return out.drop(*[c for c in out.columns if c not in have and c != ATTRIBUTES_COLUMN])


def crosstab(snapshot: DataFrame, dimension: str) -> DataFrame:
    """Customers and spend per RFM segment and segment of ``dimension`` (null: ``(none)``).

    Returns:
        ``segment``, ``attribute`` (the dimension's segment), ``customers``, ``monetary``.
    """
    value = F.coalesce(F.element_at(F.col(ATTRIBUTES_COLUMN), F.lit(dimension)), F.lit("(none)"))
    return snapshot.groupBy("segment", value.alias("attribute")).agg(
        F.count(F.lit(1)).alias("customers"), F.sum("monetary").alias("monetary")
    )


def dimensions_of(snapshot: DataFrame) -> list[str]:
    """The dimensions the snapshot's rows carry (one small aggregation: an action, for the CLI
    and the report to name what exists)."""
    keys = snapshot.select(F.explode(F.map_keys(F.col(ATTRIBUTES_COLUMN))).alias("k"))
    return sorted(r["k"] for r in keys.distinct().collect())
