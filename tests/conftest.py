from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

os.environ.setdefault("TZ", "UTC")


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """One local Spark session for the whole suite: 2 cores, few shuffle partitions, no UI."""
    from rfm_spark.config import SparkSettings
    from rfm_spark.session import build_spark

    session = build_spark(
        SparkSettings(
            master="local[2]",
            app_name="rfm-spark-tests",
            conf={
                "spark.sql.shuffle.partitions": "4",
                "spark.default.parallelism": "4",
                "spark.ui.enabled": "false",
                "spark.sql.session.timeZone": "UTC",
                "spark.driver.memory": "2g",
                "spark.sql.adaptive.enabled": "false",
            },
        )
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


DEMO_END = dt.date(2026, 11, 23)


@pytest.fixture(scope="session")
def demo(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small generated demo data shared by the end-to-end tests (600 customers, 500 days)."""
    from rfm_spark.datagen import generate

    out = tmp_path_factory.mktemp("demo")
    generate(spark, str(out), customers=600, days=500, end_date=DEMO_END, seed=7)
    return out
