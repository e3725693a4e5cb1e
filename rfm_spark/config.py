"""Typed, frozen configuration loaded from YAML.

``yaml.safe_load`` -> :class:`Config` (pydantic models that forbid unknown keys). Library code
receives these objects, never raw dicts. Every validation error names the key and says how to
fix it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rfm_spark.errors import ConfigError
from rfm_spark.paths import join

ScoringMethod = Literal["ntile", "quantile", "thresholds"]
InputFormat = Literal["parquet", "csv", "delta", "table"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SparkSettings(_Model):
    """How the SparkSession is built.

    ``master`` is only used when no master is set already (spark-submit sets one); leave it null
    on a cluster. ``remote``: a Spark Connect server (``sc://host:15002``), as ``SPARK_REMOTE``.
    """

    master: str | None = None
    remote: str | None = None
    app_name: str = "rfm-spark"
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {
                str(k): str(val).lower() if isinstance(val, bool) else str(val)
                for k, val in v.items()
            }
        return v


class ColumnMapping(_Model):
    """Names of the input columns. ``order_id: null`` means every row is one order."""

    customer_id: str = "customer_id"
    order_id: str | None = "order_id"
    order_ts: str = "order_ts"
    amount: str = "amount"


class CsvOptions(_Model):
    header: bool = True
    delimiter: str = ","
    timestamp_format: str | None = None


class ReturnMarker(_Model):
    """Which rows are returns, whose negative amounts are allowed (README "Bad rows"): every
    negative amount (no ``column``), a negative ``column`` value, or one of its ``values``."""

    column: str | None = None
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_need_column(self) -> ReturnMarker:
        if self.values and not self.column:
            raise ValueError("'values' needs 'column': name the column that holds them")
        return self


class InputSettings(_Model):
    """Where the transactions (and the customers and products) are read from; README
    "Configuration" says what each key does."""

    path: str | None = None
    format: InputFormat = "parquet"
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    csv: CsvOptions = Field(default_factory=CsvOptions)
    customers_path: str | None = None
    products_path: str | None = None  # product_id and category, for recommendation segments
    customer_id_type: Literal["string", "integer"] = "string"
    returns: ReturnMarker = Field(default_factory=ReturnMarker)


class ValidationSettings(_Model):
    """What happens to bad rows (README "Bad rows and the quarantine"): exact copies go to the
    quarantine (or are all kept), and a run with more bad rows than the share fails."""

    duplicates: Literal["quarantine", "keep"] = "quarantine"
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1)


class FeatureSettings(_Model):
    lookback_days: int = Field(default=365, ge=1, le=36500)
    time_zone: str = "UTC"
    # full: each run reads its window of input; incremental: from customer_day_activity
    mode: Literal["full", "incremental"] = "full"
    # incremental: most new input files per micro-batch (None: the source's own default)
    files_per_batch: int | None = Field(default=None, ge=1)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from exc
        return v


class Thresholds(_Model):
    """Business cut points, ascending, ``bins - 1`` per measure.

    recency: upper bounds of the best scores (``recency_days <= recency[0]`` -> score ``bins``).
    frequency, monetary: lower bounds of scores 2..bins (``value >= frequency[-1]`` -> ``bins``).
    """

    recency: list[float]
    frequency: list[float]
    monetary: list[float]

    @model_validator(mode="after")
    def _ascending(self) -> Thresholds:
        for name in ("recency", "frequency", "monetary"):
            values = getattr(self, name)
            if any(b <= a for a, b in itertools.pairwise(values)):
                raise ValueError(
                    f"scoring.thresholds.{name} must be strictly ascending, got {values}"
                )
        return self


class ScoringSettings(_Model):
    method: ScoringMethod = "ntile"
    bins: int = Field(default=5, ge=2, le=10)
    partition_by: list[str] = Field(default_factory=list)
    relative_error: float = Field(default=0.001, gt=0, lt=0.5)
    # ntile: key ranges of the exact ranking; null = from the data size (<= 64: scoring.ntile)
    ranges: int | None = Field(default=None, ge=1, le=64)
    thresholds: Thresholds | None = None

    @model_validator(mode="after")
    def _thresholds_fit(self) -> ScoringSettings:
        if self.method == "thresholds":
            if self.thresholds is None:
                raise ValueError(
                    "scoring.method is 'thresholds' but scoring.thresholds is not set; add "
                    "recency/frequency/monetary lists of bins-1 ascending cut points"
                )
            for name in ("recency", "frequency", "monetary"):
                n = len(getattr(self.thresholds, name))
                if n != self.bins - 1:
                    raise ValueError(
                        f"scoring.thresholds.{name} has {n} cut points but bins is {self.bins}; "
                        f"give exactly {self.bins - 1}"
                    )
        return self


class SegmentSettings(_Model):
    scheme: str = "rfm11"
    # attribute segments (docs/attributes.md): a built-in rule set (profile) or a YAML file;
    # null: none (the attribute_segments column stays null)
    attributes: str | None = None


class OutputSettings(_Model):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True)
    table: str = "customer_segments"
    quarantine_table: str = "quarantine"
    activity_table: str = "customer_day_activity"
    # schema (and catalog): register the tables by name (docs/sql.md "By name")
    schema_name: str | None = Field(default=None, alias="schema")
    catalog: str | None = None
    # an orchestrator's run id: the same for every retry of one run (Airflow's run_id)
    idempotency_key: str | None = None

    @field_validator("table", "quarantine_table", "activity_table", "schema_name", "catalog")
    @classmethod
    def _name(cls, v: str | None, info: Any) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"name {v!r} must be letters, digits and underscores")
        if info.field_name == "catalog" and v and not info.data.get("schema_name"):
            raise ValueError("a catalog needs 'output.schema' too: the schema the tables go in")
        return v


class HistorySettings(_Model):
    """How long the table keeps time travel.

    Delta's defaults (30 days of log, 7 days of removed files) would let a VACUUM cut into a
    14-day transition window, so the table is created with both retentions set to at least
    ``transition_days + margin_days`` (and the log to at least 30 days).
    """

    transition_days: int = Field(default=14, ge=1, le=3650)
    margin_days: int = Field(default=16, ge=1, le=3650)

    @property
    def retention_days(self) -> int:
        return self.transition_days + self.margin_days

    def table_properties(self) -> dict[str, str]:
        """Set when a table is created: the retentions, and the change data feed (a warehouse
        reads who changed with ``table_changes``)."""
        return {
            "delta.logRetentionDuration": f"interval {max(30, self.retention_days)} days",
            "delta.deletedFileRetentionDuration": f"interval {self.retention_days} days",
            "delta.enableChangeDataFeed": "true",
        }


class ClusteringSettings(_Model):
    """k-means (or bisecting k-means, Gaussian mixture) predictive segments; see ``train``."""

    algorithm: Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"] = "kmeans"
    k: int | None = Field(default=None, ge=2, le=50)
    k_min: int = Field(default=3, ge=2, le=50)
    k_max: int = Field(default=8, ge=2, le=50)
    sample_fraction: float = Field(default=1.0, gt=0, le=1)
    max_sample_rows: int = Field(default=200_000, ge=100)
    seed: int = 42

    @model_validator(mode="after")
    def _range(self) -> ClusteringSettings:
        if self.k_min > self.k_max:
            raise ValueError(f"clustering.k_min ({self.k_min}) is above k_max ({self.k_max})")
        return self


class PlantedEffectSettings(_Model):
    """A planted campaign effect: see :class:`rfm_spark.datagen.effect.PlantedEffect`."""

    salt: str
    control_share: float = Field(default=0.1, ge=0, lt=1)
    start_date: dt.date
    days: int = Field(default=14, ge=1, le=3650)
    conversion: float = Field(default=0.1, gt=0, le=1)


class DemoSettings(_Model):
    data_dir: str = "./data"
    customers: int = Field(default=20000, ge=1)
    days: int = Field(default=730, ge=1, le=36500)
    end_date: dt.date = dt.date(2026, 11, 23)
    seed: int = 42
    effect: PlantedEffectSettings | None = None


class Config(_Model):
    """The whole configuration of a run."""

    spark: SparkSettings = Field(default_factory=SparkSettings)
    warehouse: str = "./warehouse"
    input: InputSettings = Field(default_factory=InputSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)

    def table_path(self, name: str | None = None) -> str:
        """Path of a table under the warehouse: ``WAREHOUSE/<table_name>``."""
        return join(self.warehouse, name or self.output.table)

    def fingerprint(self) -> str:
        """A short stable hash of the effective configuration (recorded with each run); secret
        settings (keys, tokens, passwords) are left out, so a rotated secret keeps the hash."""
        data = self.model_dump(mode="json")
        data["spark"]["conf"] = public_settings(self.spark.conf)
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Return a copy with dotted-key overrides applied and validated again.

        Args:
            overrides: e.g. ``{"scoring.bins": 4, "input.path": "/data/tx"}``; ``None`` values
                are ignored (a flag that was not given).
        """
        data = self.model_dump(mode="python")
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return _validate(data, source="command-line flags")


_SECRET = re.compile(r"secret|password|token|credential|private|signature|account\.key|sas", re.I)


def public_settings(conf: dict[str, str]) -> dict[str, str]:
    """``conf`` without the settings that hold secrets (``fs.s3a.secret.key``, tokens, ...)."""
    return {k: v for k, v in conf.items() if not _SECRET.search(k)}


def format_error(
    exc: ValidationError,
    source: str,
    what: str = "configuration",
    docs: str = "README 'Configuration'",
) -> str:
    """One line naming every bad key of a pydantic validation error and what was found."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}' (check the spelling; see {docs})")
        else:
            found = err.get("input")
            found_s = "" if isinstance(found, dict) else f" (found {found!r})"
            parts.append(f"'{key}': {err['msg']}{found_s}")
    return f"invalid {what} in {source}: " + "; ".join(parts)


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_error(exc, source)) from None


class _Loader(yaml.SafeLoader):
    """safe_load without implicit timestamps: dates stay text so validation can name the key."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a YAML config file; ``None`` gives the built-in defaults.

    Raises:
        ConfigError: the file is missing, not YAML, not a mapping, or fails validation.
    """
    if path is None:
        return Config()
    return _validate(read_mapping(path, "config file", "--config"), source=str(path))


def read_mapping(path: str | Path, what: str, flag: str) -> dict[str, Any]:
    """A YAML file's top-level mapping (dates left as text).

    Raises:
        ConfigError: the file is missing, not YAML or not a mapping; names ``what`` and ``flag``.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} does not exist; pass an existing YAML file to {flag}")
    try:
        data = yaml.load(p.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} {str(p)!r} must hold a mapping of keys, found {type(data).__name__}"
        )
    return data


def parse_date(value: str | dt.date, what: str = "date") -> dt.date:
    """Parse an ISO date (``YYYY-MM-DD``) or raise a ConfigError naming the option."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{what} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-23"
        ) from None
