"""The churn runs: train on an older snapshot whose outcome is known, score a current one.

Training for ``--snapshot-date D`` with horizon ``H`` uses the snapshot ``D - H``: its features
read the days before ``D - H``, its labels the ``H`` days after, which end just before ``D``.
Both candidates (:mod:`rfm_spark.churn.models`) are fitted on the training customers, the one
with the better validation AUC is kept, and its AUC on the test customers (seen by neither fit
nor choice) is what the run reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rfm_spark.churn.features import LABEL, churn_features, churn_labels, labelled
from rfm_spark.churn.models import CANDIDATES, churn_probability, importances, part, pipeline
from rfm_spark.config import Config
from rfm_spark.errors import DataError, UsageError
from rfm_spark.features import daily_aggregates
from rfm_spark.io.churn_models import load_churn_model, save_churn_model
from rfm_spark.io.store import open_store
from rfm_spark.pipeline.rows import no_customers, valid_rows
from rfm_spark.progress import Progress
from rfm_spark.schemas import CHURN_SCHEMA, CHURN_TABLE, SNAPSHOT_COLUMN, cast
from rfm_spark.session import training_partitions

SEED = 42


@dataclass(frozen=True)
class ChurnTraining:
    """What a training run found and saved."""

    trained_on: dt.date
    horizon_days: int
    customers: dict[str, int]  # per part of the split
    churn_rate: float
    validation_auc: dict[str, float]
    chosen: str
    test_auc: float
    importances: dict[str, float]
    version: int = 0
    path: str = ""


def daily_before(spark: SparkSession, config: Config, start: dt.date, end: dt.date) -> DataFrame:
    """Daily activity per customer of the valid transactions in ``[start, end)`` (lazy)."""
    now = dt.datetime.now(dt.timezone.utc)
    _, rows, _, _ = valid_rows(spark, config, start=start, end=end, now=now)
    return daily_aggregates(rows)


def train_churn(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    horizon_days: int = 90,
    progress: Progress | None = None,
) -> ChurnTraining:
    """Train on the snapshot ``horizon_days`` before ``snapshot_date`` and save the better model.

    Raises:
        UsageError: The transactions end before the outcome is known.
        DataError: Too few customers, or only one outcome, to train and test.
    """
    progress = progress or Progress("churn")
    lookback = config.features.lookback_days
    trained_on = snapshot_date - dt.timedelta(days=horizon_days)
    daily = daily_before(spark, config, trained_on - dt.timedelta(days=lookback), snapshot_date)
    daily = daily.persist(StorageLevel.MEMORY_AND_DISK)
    data = labelled(
        churn_features(daily, trained_on, lookback),
        churn_labels(daily, trained_on, horizon_days),
    )
    data = data.coalesce(training_partitions(spark, data.count()))
    data = data.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        _check_outcome_known(daily, snapshot_date, trained_on)
        with progress.step(f"features of {trained_on} and churn in the {horizon_days} days after"):
            counts = {
                name: part(data, name, SEED).count() for name in ("train", "validation", "test")
            }
            rate = data.agg(F.avg(LABEL)).first()
        daily.unpersist()  # the labelled rows are cached now
        _check_trainable(counts, rate[0] if rate else None)
        result = _fit_and_choose(data, progress)
    finally:
        daily.unpersist()
        data.unpersist()
    fitted, found = result
    found.update(trained_on=trained_on, horizon_days=horizon_days, customers=counts,
                 churn_rate=float(rate[0]) if rate else 0.0)  # fmt: skip
    version, path = save_churn_model(spark, config.warehouse, fitted, _metadata(found))
    return ChurnTraining(**found, version=version, path=path)


def _check_outcome_known(daily: DataFrame, snapshot_date: dt.date, trained_on: dt.date) -> None:
    last = daily.agg(F.max("order_date")).first()
    if not last or last[0] is None or last[0] < snapshot_date - dt.timedelta(days=1):
        ends = last[0] if last and last[0] else "nowhere"
        raise UsageError(
            f"the transactions end at {ends}, before {snapshot_date}: the outcome of the "
            f"training snapshot {trained_on} is not known; use an earlier --snapshot-date"
        )


def _check_trainable(counts: dict[str, int], rate: float | None) -> None:
    if min(counts.values()) < 20 or rate is None or not 0 < rate < 1:
        raise DataError(
            f"too few customers or a single outcome to train and test a churn model "
            f"(customers per part {counts}, churn rate {rate}); use more data or another date"
        )


def _fit_and_choose(data: DataFrame, progress: Progress) -> tuple[Any, dict[str, Any]]:
    """Fit every candidate, choose by validation AUC, report the chosen one's test AUC."""
    evaluator = BinaryClassificationEvaluator(labelCol=LABEL, metricName="areaUnderROC")
    train = part(data, "train", SEED)
    fitted, aucs = {}, {}
    for kind in CANDIDATES:
        with progress.step(f"fitting {kind}"):
            fitted[kind] = pipeline(kind, SEED).fit(train)
            aucs[kind] = evaluator.evaluate(fitted[kind].transform(part(data, "validation", SEED)))
    chosen = max(CANDIDATES, key=lambda k: aucs[k])
    test_auc = evaluator.evaluate(fitted[chosen].transform(part(data, "test", SEED)))
    found = {"validation_auc": aucs, "chosen": chosen, "test_auc": test_auc,
             "importances": importances(fitted[chosen], chosen)}  # fmt: skip
    return fitted[chosen], found


def _metadata(found: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in found.items()}


def score_churn(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    run_id: str = "",
    progress: Progress | None = None,
) -> tuple[str, int, dict[str, int]]:
    """Score the customers of ``snapshot_date`` with the current model into ``customer_churn``.

    Returns:
        The table, its version, and customers per risk band.
    """
    progress = progress or Progress("churn")
    fitted, meta = load_churn_model(spark, config.warehouse)
    lookback = config.features.lookback_days
    daily = daily_before(spark, config, snapshot_date - dt.timedelta(days=lookback), snapshot_date)
    scored = churn_probability(fitted, churn_features(daily, snapshot_date, lookback))
    extra = {SNAPSHOT_COLUMN: F.lit(snapshot_date), "model_version": F.lit(meta.get("version")),
             "run_id": F.lit(run_id)}  # fmt: skip
    rows = scored.select(
        *[cast(extra.get(f.name, F.col(f.name)), f.dataType).alias(f.name) for f in CHURN_SCHEMA]
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with progress.step(f"scoring the customers of {snapshot_date}"):
            bands = {r[0]: int(r[1]) for r in rows.groupBy("churn_risk").count().collect()}
        if not bands:
            raise no_customers(config, snapshot_date - dt.timedelta(days=lookback), snapshot_date)
        path = config.table_path(CHURN_TABLE)
        with progress.step(f"committing to {path}"):
            version = open_store(spark).write_partition(
                rows, path, partition_column=SNAPSHOT_COLUMN, partition_value=snapshot_date,
                metadata={"run_id": run_id, "snapshot_date": snapshot_date.isoformat(),
                          "churn_model_version": str(meta.get("version"))},
            )  # fmt: skip
    finally:
        rows.unpersist()
    return path, version, bands
