"""The CLV runs: fit BG/NBD and Gamma-Gamma on the customer summaries, and score a snapshot.

The summaries are computed by Spark from the valid transactions before the snapshot date
(:mod:`rfm_spark.clv.summaries`). Fitting maximises the log-likelihood over the parameters'
logarithms with L-BFGS-B on the driver; each step is one Spark job in which every partition sums
the likelihood and its gradient over its customers (:mod:`rfm_spark.clv.models`, vectorised
with numpy in ``mapInPandas``) and the partial sums are added. BG/NBD sums over the distinct
(x, t_x, T) with their counts, which are far fewer than the customers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.optimize import minimize

from rfm_spark.clv.models import (
    BgNbd,
    GammaGamma,
    bgnbd_loglik,
    expected_purchases,
    expected_spend,
    gamma_gamma_loglik,
    p_alive,
)
from rfm_spark.clv.summaries import UNIT_DAYS, customer_summaries, grouped
from rfm_spark.config import Config
from rfm_spark.errors import DataError
from rfm_spark.features import daily_aggregates
from rfm_spark.io.store import open_store
from rfm_spark.pipeline.rows import no_customers, valid_rows
from rfm_spark.progress import Progress
from rfm_spark.schemas import CLV_SCHEMA, CLV_TABLE, SNAPSHOT_COLUMN, cast
from rfm_spark.session import default_parallelism

FIRST_DAY = dt.date(1900, 1, 1)  # the calibration period starts with the customer's first day
BGNBD_COLUMNS = ["frequency", "recency", "T", "n"]
GG_COLUMNS = ["frequency", "monetary_value", "n"]
PREDICTION_COLUMNS = ["p_alive", "expected_purchases", "expected_spend", "clv"]


@dataclass(frozen=True)
class ClvFit:
    """Both models' parameters and log-likelihoods, and the data they were fitted on."""

    snapshot_date: dt.date
    unit: str
    bgnbd: BgNbd
    bgnbd_loglik: float
    gamma_gamma: GammaGamma
    gamma_gamma_loglik: float
    customers: int
    repeat_customers: int  # with a positive mean repeat spend: the Gamma-Gamma's data

    def record(self) -> dict[str, Any]:
        """The JSON form: ``{"bgnbd": {r, alpha, a, b, log_likelihood}, "gamma_gamma":
        {p, q, v, log_likelihood}, ...}``."""
        return {
            "bgnbd": {**asdict(self.bgnbd), "log_likelihood": self.bgnbd_loglik},
            "gamma_gamma": {**asdict(self.gamma_gamma), "log_likelihood": self.gamma_gamma_loglik},
            "snapshot_date": self.snapshot_date.isoformat(),
            "time_unit": self.unit,
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
        }


def summaries_for(
    spark: SparkSession, config: Config, snapshot_date: dt.date, unit: str
) -> DataFrame:
    """The customer summaries of the valid transactions before ``snapshot_date`` (lazy)."""
    now = dt.datetime.now(dt.timezone.utc)
    _, rows, _, _ = valid_rows(spark, config, start=FIRST_DAY, end=snapshot_date, now=now)
    return customer_summaries(daily_aggregates(rows), snapshot_date, unit)


def fit_clv(
    spark: SparkSession,
    config: Config,
    snapshot_date: dt.date,
    *,
    unit: str = "day",
    progress: Progress | None = None,
) -> ClvFit:
    """Fit BG/NBD on every customer's summary and Gamma-Gamma on the repeat customers'.

    Raises:
        InputError: No purchase before ``snapshot_date``.
        DataError: Too few repeat customers, or an optimiser that did not converge.
    """
    progress = progress or Progress("clv")
    summaries = summaries_for(spark, config, snapshot_date, unit)
    summaries = summaries.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with progress.step("customer summaries"):
            customers = summaries.count()
        if customers == 0:
            raise no_customers(config, FIRST_DAY, snapshot_date)
        parts = default_parallelism(spark)
        groups = grouped(summaries).repartition(parts).persist(StorageLevel.MEMORY_AND_DISK)
        with progress.step(f"fitting BG/NBD on {customers:,} customers"):
            bg, bg_ll = _maximise(lambda p: _spark_sum(groups, bgnbd_loglik, BGNBD_COLUMNS, p), 4)
        groups.unpersist()
        repeat = summaries.filter(F.col("monetary_value") > 0).select(
            "frequency", "monetary_value", F.lit(1).alias("n")
        )
        repeat = repeat.repartition(parts).persist(StorageLevel.MEMORY_AND_DISK)
        n_repeat = repeat.count()
        if n_repeat < 10:
            raise DataError(
                f"only {n_repeat} customers with repeat purchases before {snapshot_date}: too "
                "few to fit the spend model; use a later --snapshot-date"
            )
        with progress.step(f"fitting Gamma-Gamma on {n_repeat:,} repeat customers"):
            gg, gg_ll = _maximise(
                lambda p: _spark_sum(repeat, gamma_gamma_loglik, GG_COLUMNS, p), 3
            )
        repeat.unpersist()
    finally:
        summaries.unpersist()
    return ClvFit(
        snapshot_date, unit, BgNbd(*bg), bg_ll, GammaGamma(*gg), gg_ll, customers, n_repeat
    )


def _maximise(
    loglik: Callable[[np.ndarray], tuple[float, np.ndarray]], k: int
) -> tuple[list[float], float]:
    """The positive parameters maximising ``loglik`` (searched over their logarithms)."""

    def negative(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        value, grad = loglik(params)
        return -value, -grad * params

    result = minimize(negative, np.zeros(k), jac=True, method="L-BFGS-B",
                      options={"maxiter": 500, "gtol": 1e-7})  # fmt: skip
    if not result.success or not np.isfinite(result.fun):
        raise DataError(f"the CLV fit did not converge: {result.message}")
    return [float(v) for v in np.exp(result.x)], float(-result.fun)


def _spark_sum(
    df: DataFrame,
    loglik: Callable[..., tuple[float, np.ndarray]],
    columns: list[str],
    params: np.ndarray,
) -> tuple[float, np.ndarray]:
    """``loglik`` and its gradient summed over ``df``: each partition sums its rows with numpy,
    Spark adds the partial sums (one job)."""
    values = [float(v) for v in params]
    names = ["ll", *[f"g{i}" for i in range(len(values))]]

    def partial(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        total, grad = 0.0, np.zeros(len(values))
        for batch in batches:
            if len(batch):
                ll, g = loglik(np.array(values), *[batch[c].to_numpy(float) for c in columns])
                total, grad = total + ll, grad + g
        yield pd.DataFrame([[total, *grad]], columns=names)

    schema = ", ".join(f"{n} double" for n in names)
    row = df.mapInPandas(partial, schema).agg(*[F.sum(n).alias(n) for n in names]).first()
    assert row is not None
    return float(row["ll"]), np.array([float(row[n]) for n in names[1:]])


def predictions(summaries: DataFrame, fit: dict[str, Any], horizon_days: int) -> DataFrame:
    """Each customer's ``p_alive``, ``expected_purchases`` in the horizon, ``expected_spend``
    per purchase and ``clv`` (their product) under a fit record (no action)."""
    bg = BgNbd(**{k: fit["bgnbd"][k] for k in ("r", "alpha", "a", "b")})
    gg = GammaGamma(**{k: fit["gamma_gamma"][k] for k in ("p", "q", "v")})
    horizon = horizon_days / UNIT_DAYS[fit["time_unit"]]

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            x, t_x, T = (b[c].to_numpy(float) for c in ("frequency", "recency", "T"))
            spend = expected_spend(gg, x, b["monetary_value"].to_numpy(float))
            buys = expected_purchases(bg, horizon, x, t_x, T)
            yield b.assign(p_alive=p_alive(bg, x, t_x, T), expected_purchases=buys,
                           expected_spend=spend, clv=buys * spend)  # fmt: skip

    fields = ", ".join(f"{c} double" for c in PREDICTION_COLUMNS)
    schema = f"{', '.join(_ddl(summaries))}, {fields}"
    scored = summaries.mapInPandas(score, schema)
    # NaN (no spend estimate: see expected_spend) is stored as null, which sums skip
    return scored.withColumns({c: F.nanvl(F.col(c), F.lit(None)) for c in PREDICTION_COLUMNS})


def _ddl(df: DataFrame) -> list[str]:
    return [f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields]


@dataclass(frozen=True)
class ClvScores:
    """What a score run wrote: the table, its version, and the totals it printed."""

    table: str
    version: int
    customers: int
    expected_purchases: float
    clv: float
    without_clv: int  # no spend estimate (Gamma-Gamma q <= 1 and no repeat purchase)


def score_clv(
    spark: SparkSession,
    config: Config,
    fit: dict[str, Any],
    snapshot_date: dt.date,
    *,
    horizon_days: int = 90,
    run_id: str = "",
    progress: Progress | None = None,
) -> ClvScores:
    """Score every customer with a purchase before ``snapshot_date`` and replace the snapshot's
    partition of ``customer_clv`` with them (one commit).

    Raises:
        InputError: No purchase before ``snapshot_date``.
    """
    progress = progress or Progress("clv")
    summaries = summaries_for(spark, config, snapshot_date, fit["time_unit"])
    scored = predictions(summaries, fit, horizon_days)
    extra = {
        SNAPSHOT_COLUMN: F.lit(snapshot_date),
        "horizon_days": F.lit(horizon_days),
        "fit_version": F.lit(fit.get("version")),
        "run_id": F.lit(run_id),
    }
    rows = scored.select(
        *[cast(extra.get(f.name, F.col(f.name)), f.dataType).alias(f.name) for f in CLV_SCHEMA]
    )
    store = open_store(spark)
    path = config.table_path(CLV_TABLE)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with progress.step(f"scoring the customers of {snapshot_date}"):
            missing = F.count(F.when(F.col("clv").isNull(), 1))
            sums = [F.sum("expected_purchases"), F.sum("clv"), missing]
            totals = rows.agg(F.count(F.lit(1)), *sums).first()
        assert totals is not None
        if not totals[0]:
            raise no_customers(config, FIRST_DAY, snapshot_date)
        with progress.step(f"committing to {path}"):
            version = store.write_partition(
                rows, path, partition_column=SNAPSHOT_COLUMN, partition_value=snapshot_date,
                metadata={"run_id": run_id, "snapshot_date": snapshot_date.isoformat(),
                          "clv_fit_version": str(fit.get("version"))},
            )  # fmt: skip
    finally:
        rows.unpersist()
    return ClvScores(
        path, version, int(totals[0]), float(totals[1]), float(totals[2] or 0), int(totals[3])
    )
