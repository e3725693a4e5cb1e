"""The one place a SparkSession is built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from rfm_spark.config import SparkSettings
from rfm_spark.errors import EnvironmentProblem

MIN_JAVA = 17

# Settings every session gets unless the user overrides them: micro-second timestamps so the
# Parquet footers carry statistics Delta can use, UTC as the session zone.
ELIMINATE_SORTS = "org.apache.spark.sql.catalyst.optimizer.EliminateSorts"

BASE_CONF: dict[str, str] = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    # the exact-duplicate grouping sorts each partition by its key, so that it and the order,
    # day and customer levels after it run as streaming sort aggregates (see
    # rfm_spark.validation.deduplicate): Spark replaces a hash aggregate whose input is sorted
    # by its key, and keeps the sorts that tell it so
    "spark.sql.execution.replaceHashWithSortAgg": "true",
    "spark.sql.optimizer.excludedRules": ELIMINATE_SORTS,
}


def java_major_version(java: str | None = None) -> int | None:
    """Return the major version of the ``java`` on PATH (or ``JAVA_HOME``), None if absent."""
    java = java or (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else None
    )
    java = java or shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Fail with a clear message when Java is missing or older than 17."""
    major = java_major_version()
    if major is None:
        raise EnvironmentProblem(
            "Java was not found; Spark needs Java 17 or newer. Install it (e.g. "
            "'apt-get install openjdk-17-jre-headless') or set JAVA_HOME."
        )
    if major < MIN_JAVA:
        raise EnvironmentProblem(
            f"Java {major} found, but Spark 4 needs Java {MIN_JAVA} or newer; install a newer JDK "
            "or point JAVA_HOME at one."
        )


def _quiet_local_logging() -> None:
    """Errors-only Spark logging for a JVM this process is about to launch (not spark-submit)."""
    if os.environ.get("PYSPARK_SUBMIT_ARGS") or os.environ.get("PYSPARK_GATEWAY_PORT"):
        return
    props = Path(__file__).with_name("log4j2.properties")
    if props.is_file():
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f'--driver-java-options "-Dlog4j2.configurationFile=file:{props}" pyspark-shell'
        )


def build_spark(
    settings: SparkSettings | None = None,
    extra_conf: Mapping[str, str] | None = None,
    *,
    quiet: bool = False,
) -> SparkSession:
    """Build (or get) the SparkSession.

    Under spark-submit the master and most settings come from the submit command; ``master`` from
    the config is only applied when none is set there, so the same job runs locally and on a
    cluster. ``quiet`` limits a locally launched JVM's logging to errors.
    """
    settings = settings or SparkSettings()
    active = SparkSession.getActiveSession()
    if active is not None:
        for k, v in {**(extra_conf or {})}.items():
            active.conf.set(k, v)
        return active
    if "SPARK_HOME" not in os.environ or not os.environ.get("PYSPARK_GATEWAY_PORT"):
        check_java()
    if quiet:
        _quiet_local_logging()
    builder = SparkSession.builder.appName(settings.app_name)
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT")) or "spark.master" in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    )
    if settings.master and not submitted:
        builder = builder.master(settings.master)
    conf = {
        **BASE_CONF,
        "spark.ui.showConsoleProgress": "false",
        **settings.conf,
        **(extra_conf or {}),
    }
    for k, v in conf.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def sort_aggregation(spark: SparkSession) -> bool:
    """Whether Spark turns a hash aggregate over rows sorted by its key into a sort aggregate."""
    value = spark.conf.get("spark.sql.execution.replaceHashWithSortAgg", "false") or "false"
    return value.strip().lower() == "true"


def keeps_sorts(spark: SparkSession) -> bool:
    """Whether a sort right below an aggregate survives the optimizer (``EliminateSorts``
    excluded), so that a chain of aggregates over sorted input can stream."""
    excluded = spark.conf.get("spark.sql.optimizer.excludedRules", "") or ""
    return ELIMINATE_SORTS in [r.strip() for r in excluded.split(",")]


def has_delta_extension(spark: SparkSession) -> bool:
    """True when the session has Delta's SQL extension configured and its classes load."""
    ext = spark.conf.get("spark.sql.extensions", "") or ""
    if "io.delta.sql.DeltaSparkSessionExtension" not in ext:
        return False
    try:
        jvm: Any = spark.sparkContext._jvm
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
        return True
    except Exception:
        return False
