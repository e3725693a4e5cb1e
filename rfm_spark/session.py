"""The one place a SparkSession is built."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from rfm_spark.config import SparkSettings
from rfm_spark.errors import ConfigError, EnvironmentProblem

log = logging.getLogger(__name__)

MIN_JAVA = 17
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
PARAMETERS_AT_ANALYSIS = "spark.sql.legacy.parameterSubstitution.constantsOnly"

# Settings every session gets unless the user overrides them: micro-second timestamps so the
# Parquet footers carry statistics Delta can use, UTC as the session zone.
ELIMINATE_SORTS = "org.apache.spark.sql.catalyst.optimizer.EliminateSorts"

TIME_ZONE = "spark.sql.session.timeZone"

BASE_CONF: dict[str, str] = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    TIME_ZONE: "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    # the exact-duplicate grouping sorts each partition by its key, so that it and the order,
    # day and customer levels after it run as streaming sort aggregates (see
    # rfm_spark.validation.deduplicate): Spark replaces a hash aggregate whose input is sorted
    # by its key, and keeps the sorts that tell it so
    "spark.sql.execution.replaceHashWithSortAgg": "true",
    "spark.sql.optimizer.excludedRules": ELIMINATE_SORTS,
    # Parquet from pandas/pyarrow stores TIMESTAMP(NANOS), which Spark 4 otherwise refuses;
    # read as long nanoseconds, rfm_spark.io.inputs turns them back into timestamps
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    # a finished job's shuffle files go when the driver's garbage collector drops its plan,
    # which Spark forces every 30 min by default: a long first incremental run then holds
    # ~30 min of finished batches' shuffle (up to ~24 GB at a billion rows, docs/scaling.md)
    "spark.cleaner.periodicGC.interval": "5min",
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


def _submitted_conf() -> dict[str, str]:
    """The settings spark-submit gave this driver (read before the session exists)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def _with_jars(
    conf: Mapping[str, str], jars: list[str], extension: bool, *, local: bool = False
) -> dict[str, str]:
    out = dict(conf)
    if jars and local:
        # local mode: the executors live in the driver JVM, so the jars go on its class path
        # at launch instead of spark.jars, which copies every jar (the AWS SDK bundle alone is
        # ~690 MB) into a temporary folder at each start
        listed = [j for j in (out.get("spark.driver.extraClassPath") or "").split(os.pathsep) if j]
        out["spark.driver.extraClassPath"] = os.pathsep.join([*listed, *jars])
        # Delta rebuilds a table's state from its log in 50 tasks by default, sized for
        # clusters; on one machine a few do it in half the time (measured on small tables)
        out.setdefault("spark.databricks.delta.snapshotPartitions", "4")
        # VACUUM lists the table's files in this many tasks (default 10,000, sized for
        # clusters): a dry run over a one-file table took 25-35 s locally, 2-3 s with 32
        out.setdefault("spark.sql.sources.parallelPartitionDiscovery.parallelism", "32")
    elif jars:
        listed = [j for j in (out.get("spark.jars") or "").split(",") if j]
        out["spark.jars"] = ",".join([*listed, *jars])
    if extension:
        ext = [e for e in (out.get("spark.sql.extensions") or "").split(",") if e]
        out["spark.sql.extensions"] = ",".join([*ext, DELTA_EXTENSION])
        out.setdefault("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        # Delta's SQL parser drops the values of parameterized SQL (spark.sql(q, args=...))
        # on Spark 4.1+ (delta-io/delta#7640); binding them at analysis time works
        out.setdefault(PARAMETERS_AT_ANALYSIS, "true")
    return out


def delta_conf(
    conf: Mapping[str, str], *, submitted: bool, s3: bool = False, local: bool = False
) -> dict[str, str]:
    """``conf`` plus what makes the session a Delta session, when the jars can be had.

    - The user already configured the extension or ``spark.jars.packages``: left alone.
    - Under spark-submit: the jars come from ``--packages``/``--jars`` or the runtime
      (Databricks); the extension and catalog are added when Delta is among them.
    - A JVM this process launches: the jars fetched by ``python -m rfm_spark.jars fetch``
      (``make install``) go on the class path (``local``: the driver's, else ``spark.jars``);
      without them one warning says so and tables are written by the delta-rs fallback.
      ``s3`` adds hadoop-aws for ``s3a://`` paths.
    """
    from rfm_spark import jars

    if DELTA_EXTENSION in conf.get("spark.sql.extensions", "") or conf.get("spark.jars.packages"):
        return dict(conf)
    if submitted:
        given = _submitted_conf()
        if DELTA_EXTENSION in given.get("spark.sql.extensions", ""):
            return dict(conf)
        text = " ".join(given.get(k, "") for k in ("spark.jars", "spark.jars.packages"))
        on_classpath = "delta-spark" in text or "DATABRICKS_RUNTIME_VERSION" in os.environ
        if not on_classpath:
            log.warning(
                "the Delta Lake connector is not among the submitted jars; tables are written "
                "by the delta-rs fallback. Fix: spark-submit --packages %s",
                jars.delta_artifact().coordinate,
            )
        return _with_jars(conf, [], extension=on_classpath)
    delta = jars.installed_jars(jars.delta_artifact())
    if not delta:
        log.warning(
            "Delta Lake jars not found in %s; tables are written by the delta-rs fallback. "
            "Fix: 'make install' or 'python -m rfm_spark.jars fetch' (needs Maven Central).",
            jars.default_dir(),
        )
        return dict(conf)
    extra = list(delta)
    s3_artifact = jars.s3_artifact() if s3 else None
    if s3_artifact:
        s3_jars = jars.installed_jars(s3_artifact)
        if not s3_jars:
            log.warning(
                "hadoop-aws jars not found in %s; s3a:// paths will not open. "
                "Fix: 'python -m rfm_spark.jars fetch'.",
                jars.default_dir(),
            )
        extra += s3_jars
    return _with_jars(conf, extra, extension=True, local=local)


def build_spark(
    settings: SparkSettings | None = None,
    extra_conf: Mapping[str, str] | None = None,
    *,
    quiet: bool = False,
    s3: bool = False,
    time_zone: str | None = None,
) -> SparkSession:
    """Build (or get) the SparkSession, with the Delta connector when it can be had.

        Under spark-submit the master and most settings come from the submit command; ``master`` from
        the config is only applied when none is set there, so the same job runs locally and on a
        cluster. ``quiet`` limits a locally launched JVM's logging to errors. ``s3`` loads the
        ``s3a://`` file system's jars into a locally launched JVM. ``time_zone``: the session zone,
    the one the runs cut days in (``features.time_zone``; see :func:`check_time_zone`). Jars and the Delta extension only
        take effect in the first session of a process: a running JVM keeps what it started with.
    """
    settings = settings or SparkSettings()
    extra_conf = {**(extra_conf or {}), **({TIME_ZONE: time_zone} if time_zone else {})}
    active = SparkSession.getActiveSession()
    if active is not None:
        for k, v in extra_conf.items():
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
        **extra_conf,
    }
    master = settings.master or conf.get("spark.master") or "local[*]"
    local = not submitted and master.startswith("local")
    conf = delta_conf(conf, submitted=submitted, s3=s3, local=local)
    if local:
        # Python workers (the CLV fit's numpy sums) run the driver's interpreter, whose
        # environment has numpy, pandas and scipy, not whatever 'python3' is on the PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for k, v in conf.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def check_time_zone(spark: SparkSession, time_zone: str) -> None:
    """Refuse a session whose zone is not ``time_zone``: days would be cut in the wrong zone.

    The zone is set once, when the session is built (:func:`build_spark`), never mid-run.

    Raises:
        ConfigError: The session's ``spark.sql.session.timeZone`` differs.
    """
    session_zone = spark.conf.get(TIME_ZONE)
    if session_zone != time_zone:
        raise ConfigError(
            f"features.time_zone is {time_zone!r} but the Spark session's {TIME_ZONE} is "
            f"{session_zone!r}, so days would be cut in the wrong zone; build the session with "
            f"rfm_spark.session.build_spark(time_zone={time_zone!r}) or set {TIME_ZONE} to "
            f"{time_zone!r} when you create it"
        )


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
    if DELTA_EXTENSION not in ext:
        return False
    try:
        jvm: Any = spark.sparkContext._jvm
        # Spark's class loader: jars from spark.jars are not on the JVM's system class path
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
        return True
    except Exception:
        return False
