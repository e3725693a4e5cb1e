from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import settings
from pyspark.sql import SparkSession

os.environ.setdefault("TZ", "UTC")

# Property tests draw the same examples on every run ("ci", the default), so that a suite run
# passes or fails by the code alone; HYPOTHESIS_PROFILE=explore draws new ones each run (and
# keeps failures in .hypothesis/) to look for bugs.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The tests that start Spark in child processes share one class archive for their JVMs
    (``_procs.class_archive``): when any is collected, start making it now, in the background,
    so that it is ready before the first of them runs."""
    import _procs

    if any(
        getattr(item, "module", None) and hasattr(item.module, "fast_jvm_env")
        for item in session.items
    ):
        _procs.start_class_archive()


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """One local Spark session for the whole suite: 2 cores, no UI.

    The test tables are tiny, so a shuffle goes to 2 partitions and Delta rebuilds a table's
    state in 1 task (the suite's in-process tests take about a fifth less time than with 4 of
    each); the input of ``createDataFrame`` is still split in 4, so that the distributed steps
    meet rows in several partitions.
    """
    from rfm_spark.config import SparkSettings
    from rfm_spark.session import build_spark

    session = build_spark(
        SparkSettings(
            master="local[2]",
            app_name="rfm-spark-tests",
            conf={
                "spark.sql.shuffle.partitions": "2",
                "spark.databricks.delta.snapshotPartitions": "1",
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
    from rfm_spark.io.demo_data import generate

    out = tmp_path_factory.mktemp("demo")
    generate(spark, str(out), customers=600, days=500, end_date=DEMO_END, seed=7)
    return out
