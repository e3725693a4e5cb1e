"""The churn models: MLlib pipelines, the customer split, importances and risk bands (no action).

Two candidates are trained on the same customers and the better by validation AUC is kept:
logistic regression on standardised features (each feature's weight reads as an importance)
and gradient-boosted trees (non-linear; importances from the trees' splits). Customers are
split into training, validation and test by a hash of their id, so the split is the same on
every run and does not depend on partitioning.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.churn.features import FEATURES, LABEL

CANDIDATES = ("logistic_regression", "gbt")
SPLIT = {"train": (0, 60), "validation": (60, 80), "test": (80, 100)}  # percent of customers
RISK_BANDS = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))  # lower bounds of probability


def pipeline(kind: str, seed: int) -> Pipeline:
    """Assemble the features and fit ``kind`` (one of :data:`CANDIDATES`)."""
    assemble = VectorAssembler(inputCols=FEATURES, outputCol="raw", handleInvalid="keep")
    if kind == "logistic_regression":
        scale = StandardScaler(inputCol="raw", outputCol="features", withMean=True)
        model = LogisticRegression(labelCol=LABEL, featuresCol="features", maxIter=100)
        return Pipeline(stages=[assemble, scale, model])
    trees = GBTClassifier(labelCol=LABEL, featuresCol="raw", maxIter=40, maxDepth=4, seed=seed)
    return Pipeline(stages=[assemble, trees])


def part(df: DataFrame, name: str, seed: int) -> DataFrame:
    """The customers of one part of :data:`SPLIT` (by a hash of the id and the seed)."""
    low, high = SPLIT[name]
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col("customer_id")), F.lit(100))
    return df.filter((bucket >= low) & (bucket < high))


def importances(fitted: PipelineModel, kind: str) -> dict[str, float]:
    """Each feature's share of the model's importance (summing to 1): the trees' split gains,
    or the absolute weights of the standardised features."""
    last: Any = fitted.stages[-1]
    raw = last.featureImportances.toArray() if kind == "gbt" else abs(last.coefficients.toArray())
    total = float(sum(raw)) or 1.0
    return {f: float(v) / total for f, v in zip(FEATURES, raw, strict=True)}


def risk_band(probability: Column) -> Column:
    """``high`` from 0.6, ``medium`` from 0.3, else ``low``."""
    out = F.lit(RISK_BANDS[-1][1])
    for bound, name in reversed(RISK_BANDS[:-1]):
        out = F.when(probability >= F.lit(bound), F.lit(name)).otherwise(out)
    return out


def churn_probability(fitted: PipelineModel, features: DataFrame) -> DataFrame:
    """``customer_id``, ``churn_probability`` and ``churn_risk`` for every row of ``features``."""
    scored = fitted.transform(features)
    p = vector_to_array(F.col("probability")).getItem(1)
    return scored.select(
        "customer_id", p.alias("churn_probability"), risk_band(p).alias("churn_risk")
    )
