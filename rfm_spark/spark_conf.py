"""Spark settings: the ones every session gets, the Delta connector's, and the checks of Java
and of Spark's version that come before a session exists.

Kept apart from :mod:`rfm_spark.session` (which builds sessions) because the local servers
(:mod:`rfm_spark.servers`) start Spark with the same settings through ``spark-submit``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from rfm_spark.errors import EnvironmentProblem

log = logging.getLogger(__name__)

MIN_JAVA = 17
# the Spark versions the Delta connector 4.4 and this product run on
MIN_SPARK, MAX_SPARK = (4, 0, 1), (4, 2)
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
PARAMETERS_AT_ANALYSIS = "spark.sql.legacy.parameterSubstitution.constantsOnly"
ELIMINATE_SORTS = "org.apache.spark.sql.catalyst.optimizer.EliminateSorts"
TIME_ZONE = "spark.sql.session.timeZone"

# Settings every session gets unless the user overrides them (SQL settings: a Connect session
# takes them too; a server that refuses one keeps its own, see _apply_sql_conf).
BASE_SQL_CONF: dict[str, str] = {
    # micro-second timestamps, so the Parquet footers carry statistics Delta can use
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
}
# Settings of a session this product starts (not of a Connect server's, not of spark-submit's)
BASE_APP_CONF: dict[str, str] = {
    # a finished job's shuffle files go when the driver's garbage collector drops its plan,
    # which Spark forces every 30 min by default: a long first incremental run then holds
    # ~30 min of finished batches' shuffle (up to ~24 GB at a billion rows, docs/scaling.md)
    "spark.cleaner.periodicGC.interval": "5min",
    "spark.ui.showConsoleProgress": "false",
}
BASE_CONF = {**BASE_SQL_CONF, **BASE_APP_CONF}


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
            "'apt-get install openjdk-17-jre-headless') or set JAVA_HOME, or run against a "
            "Spark Connect server (SPARK_REMOTE=sc://host:15002), which needs no Java here."
        )
    if major < MIN_JAVA:
        raise EnvironmentProblem(
            f"Java {major} found, but Spark 4 needs Java {MIN_JAVA} or newer; install a newer JDK "
            "or point JAVA_HOME at one."
        )


def check_spark_version(version: str) -> None:
    """Refuse a Spark outside the supported range (the Delta connector's), naming both."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    if not numbers[:3] >= MIN_SPARK or numbers[:2] > MAX_SPARK:
        raise EnvironmentProblem(
            f"Spark {version} found; rfm-spark runs on Spark 4.0.1 to 4.2 (the range of the "
            "Delta Lake connector 4.4). Fix: use a cluster runtime in that range, or install "
            "'rfm-spark[spark]' for a matching pyspark."
        )


def quiet_local_logging() -> None:
    """Errors-only Spark logging for a JVM this process is about to launch (not spark-submit)."""
    if os.environ.get("PYSPARK_SUBMIT_ARGS"):
        return
    props = Path(__file__).with_name("log4j2.properties")
    if props.is_file():
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f'--driver-java-options "-Dlog4j2.configurationFile=file:{props}" pyspark-shell'
        )


def _with_jars(conf: Mapping[str, str], jars: list[str]) -> dict[str, str]:
    """Local mode: the executors live in the driver JVM, so the jars go on its class path at
    launch (``spark.jars`` would copy every jar, the AWS SDK bundle alone ~690 MB, into a
    temporary folder at each start)."""
    out = dict(conf)
    listed = [j for j in (out.get("spark.driver.extraClassPath") or "").split(os.pathsep) if j]
    out["spark.driver.extraClassPath"] = os.pathsep.join([*listed, *jars])
    # Delta rebuilds a table's state from its log in 50 tasks by default, sized for
    # clusters; on one machine a few do it in half the time (measured on small tables)
    out.setdefault("spark.databricks.delta.snapshotPartitions", "4")
    # VACUUM lists the table's files in this many tasks (default 10,000, sized for
    # clusters): a dry run over a one-file table took 25-35 s locally, 2-3 s with 32
    out.setdefault("spark.sql.sources.parallelPartitionDiscovery.parallelism", "32")
    return out


def _with_extension(conf: Mapping[str, str]) -> dict[str, str]:
    """The Delta SQL extension and catalog, unless the user configured their own."""
    out = dict(conf)
    ext = [e for e in (out.get("spark.sql.extensions") or "").split(",") if e]
    if DELTA_EXTENSION not in ext:
        out["spark.sql.extensions"] = ",".join([*ext, DELTA_EXTENSION])
    out.setdefault("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    # Delta's SQL parser drops the values of parameterized SQL (spark.sql(q, args=...))
    # on Spark 4.1+ (delta-io/delta#7640); binding them at analysis time works
    out.setdefault(PARAMETERS_AT_ANALYSIS, "true")
    return out


def delta_conf(conf: Mapping[str, str], *, local: bool, s3: bool = False) -> dict[str, str]:
    """``conf`` plus what makes a classic session a Delta session.

    The extension and catalog are always added (Spark logs and skips an extension whose class
    is missing; :func:`require_delta` then says how to add the connector). A JVM this process
    launches (``local``) gets the jars fetched by ``make install`` on its class path, and
    hadoop-aws for ``s3a://`` paths (``s3``); under spark-submit the jars come from
    ``--packages`` or the runtime. ``spark.jars.packages`` set by the user wins over the jars.
    """
    from rfm_spark import jars

    out = _with_extension(conf)
    if not local or conf.get("spark.jars.packages"):
        return out
    found = jars.installed_jars(jars.delta_artifact())
    s3_artifact = jars.s3_artifact() if s3 else None
    if s3_artifact and found:
        s3_jars = jars.installed_jars(s3_artifact)
        if not s3_jars:
            log.warning(
                "hadoop-aws jars not found in %s; s3a:// paths will not open. "
                "Fix: 'python -m rfm_spark.jars fetch'.",
                jars.default_dir(),
            )
        found = [*found, *s3_jars]
    return _with_jars(out, found) if found else out
