"""A run: its id, what every step of it needs, and what its commits record.

Segment and backfill runs start the same way (check the scheme, pin the time zone, open the
store) and label their commits the same way, so that ``rfm-spark history`` reads one set of
metadata keys whichever command wrote a version.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from rfm_spark import __version__
from rfm_spark.attributes import AttributeRules, load_attribute_rules
from rfm_spark.clustering import ClusterModel
from rfm_spark.config import Config
from rfm_spark.errors import ConfigError
from rfm_spark.io.commits import Txn
from rfm_spark.io.models import load_model
from rfm_spark.io.store import TableStore
from rfm_spark.pipeline.attribute_sources import attribute_input
from rfm_spark.pipeline.output import segment_rows
from rfm_spark.pipeline.results import Reconciliation
from rfm_spark.progress import Progress
from rfm_spark.scoring import ScoringInfo
from rfm_spark.segments import Scheme, load_scheme
from rfm_spark.session import check_time_zone

# metadata keys that describe one snapshot, left out of a multi-snapshot commit
PER_SNAPSHOT = ("scoring",)


@dataclass(frozen=True)
class Run:
    """What the steps of one segment or backfill run share.

    Attributes:
        spark: The session.
        config: The run's configuration.
        progress: Where the progress lines go (and the step timings are kept).
        run_id: The id written into every row and commit of the run.
        scheme: The checked segment scheme.
        store: The Delta table store.
        path: The ``customer_segments`` table.
        attributes: The checked attribute rules (None: not configured).
        purpose: The command and its dates (``segment 2026-11-23``), kept with the commits
            of an idempotency key so that the key cannot be reused for another run.
    """

    spark: SparkSession
    config: Config
    progress: Progress
    run_id: str
    scheme: Scheme
    store: TableStore
    path: str
    attributes: AttributeRules | None = None
    purpose: str = ""


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20261123T093000Z-1a2b3c4d``: sortable by start time, unique."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def start_run(
    spark: SparkSession,
    config: Config,
    name: str,
    *,
    progress: Progress | None,
    run_id: str | None,
) -> Run:
    """Check the scheme and the session time zone, and open the store.

    The scheme is checked first so that a bad configuration fails before anything touches
    the warehouse; the time zone decides which day a transaction falls on.

    Args:
        spark: The session.
        config: The run's configuration.
        name: The command, the prefix of the progress lines when ``progress`` is None.
        progress: The caller's progress, or None for a new one.
        run_id: The caller's run id, or None for a new one.

    Raises:
        ConfigError: The scheme does not fit ``scoring.bins``, or the session's time zone is not
            ``features.time_zone``.
    """
    from rfm_spark.io.store import open_store

    progress = progress or Progress(name)
    run_id = run_id or new_run_id()
    scheme = check_scheme(config)
    rules = config.segments.attributes
    attributes = load_attribute_rules(rules) if rules else None
    check_time_zone(spark, config.features.time_zone)
    store = open_store(spark)
    path = config.table_path()
    return Run(spark, config, progress, run_id, scheme, store, path, attributes)


def check_scheme(config: Config) -> Scheme:
    """The configured scheme, refused when it names scores other than ``scoring.bins`` make."""
    scheme = load_scheme(config.segments.scheme)
    if scheme.bins != config.scoring.bins:
        raise ConfigError(
            f"scheme {scheme.name!r} is defined for scores 1..{scheme.bins} but scoring.bins is "
            f"{config.scoring.bins}; use --bins {scheme.bins} or a scheme for "
            f"{config.scoring.bins} bins"
        )
    return scheme


def current_model(run: Run) -> ClusterModel | None:
    """The latest cluster model, saying on the progress lines whether clusters are assigned."""
    model = load_model(run.spark, run.config.warehouse)
    if model is None:
        run.progress.info(
            "no cluster model yet: cluster_id and cluster_name stay null "
            "(run 'rfm-spark train' to add predictive segments)"
        )
    else:
        run.progress.info(f"assigning clusters with model v{model.version} (k={model.k})")
    return model


def commit_txn(run: Run, index: int = 0) -> Txn | None:
    """The idempotent-write identity of a run's ``index``-th commit to a table.

    Only when the run has an idempotency key (an orchestrator's run id: the same for every
    retry of one run), so that a retry finds the commits an earlier attempt made, and a key
    reused for another command or date is refused.
    """
    key = run.config.output.idempotency_key
    return Txn(f"rfm-spark:{key}", index, run.purpose) if key else None


def commit_metadata(
    run: Run,
    *,
    snapshot_date: dt.date,
    info: ScoringInfo,
    recon: Reconciliation,
    output_rows: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The metadata of a snapshot's commit: enough to audit or replay the run from history.

    Args:
        run: The run (its id, its configuration by fingerprint, its scheme).
        snapshot_date: The snapshot committed.
        info: How the snapshot was scored.
        recon: Where the snapshot's input rows went.
        output_rows: The customers committed.
        extra: More keys (the backfill span, the cluster model version).
    """
    return {
        "run_id": run.run_id,
        "snapshot_date": snapshot_date.isoformat(),
        "config_hash": run.config.fingerprint(),
        "scheme": run.scheme.name,
        "scoring_method": info.method,
        "scoring": json.dumps(info.as_dict(), sort_keys=True),
        "reconciliation": json.dumps(recon.as_dict(), sort_keys=True),
        "input_rows": str(recon.input_rows),
        "output_rows": str(output_rows),
        "rfm_spark_version": __version__,
        # how the features were made: "full" recomputes them from the input rows,
        # "incremental" from the customer_day_activity table
        "made_by": "full",
        **(extra or {}),
    }


def model_metadata(model: ClusterModel | None) -> dict[str, str]:
    """The metadata naming the cluster model a commit used (none without a model)."""
    return {"cluster_model_version": str(model.version)} if model is not None else {}


def run_rows(
    run: Run,
    scored: DataFrame,
    *,
    snapshot_date: dt.date | None,
    model: ClusterModel | None,
    snapshot_dates: list[dt.date],
) -> DataFrame:
    """The ``customer_segments`` rows of scored rows under the run's scheme, attribute rules
    and id (:func:`rfm_spark.pipeline.output.segment_rows`); ``snapshot_dates`` are those the
    rows hold."""
    return segment_rows(
        scored,
        run.config,
        run.scheme,
        snapshot_date=snapshot_date,
        run_id=run.run_id,
        model=model,
        attributes=attribute_input(
            run.spark, run.config, run.attributes, snapshot_dates, run.progress
        ),
    )
