from __future__ import annotations

import os

import pytest
from pyspark.sql import SparkSession

os.environ.setdefault("TZ", "UTC")


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """One local Spark session for the whole suite: 2 cores, few shuffle partitions, no UI."""
    from rfm_spark.session import build_spark
    from rfm_spark.config import SparkSettings

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
