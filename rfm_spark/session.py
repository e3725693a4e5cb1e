"""The one place a SparkSession is built: local, under spark-submit, or a Spark Connect client.

Three kinds of session, one code path for the runs:

- **local**: this process launches Spark's JVM (``spark.master: local[*]``); the Delta
  connector's jars fetched by ``make install`` go on the driver's class path.
- **submitted**: ``spark-submit`` launched this driver; master, resources and jars
  (``--packages``) come from the submit command or the runtime (Databricks).
- **connect**: ``SPARK_REMOTE=sc://host:port`` (or ``--remote``, ``spark.remote``): a Spark
  Connect client with no JVM of its own; the server has the connector and its own settings,
  so only the session's SQL settings are sent.

The runs never touch ``sparkContext``, the JVM or RDDs, so each works on all three.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from rfm_spark.config import SparkSettings
from rfm_spark.errors import ConfigError, EnvironmentProblem
from rfm_spark.spark_conf import (
    BASE_APP_CONF,
    BASE_CONF,
    ELIMINATE_SORTS,
    TIME_ZONE,
    check_java,
    check_spark_version,
    delta_conf,
    quiet_local_logging,
)

log = logging.getLogger(__name__)


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


# what a JVM this process launches does to its settings first (see use_local_catalog)
_LOCAL_CATALOG: list[Callable[[dict[str, str]], dict[str, str]]] = []


def use_local_catalog(prepare: Callable[[dict[str, str]], dict[str, str]] | None) -> None:
    """Let ``prepare`` set the catalog of a JVM this process launches (local mode only: under
    spark-submit or Spark Connect the cluster's or the server's own catalog is used).

    ``prepare`` gets the session's settings just before the launch and returns them with its
    own (a metastore kept under the warehouse, :mod:`rfm_spark.io.catalog`), or raises to stop
    the launch with a clear error. None: Spark's default catalog. Only the first session of a
    process is launched, so this is called before it is built.
    """
    _LOCAL_CATALOG[:] = [prepare] if prepare is not None else []


def _mode(settings: SparkSettings, remote: str | None) -> str:
    if remote or os.environ.get("SPARK_REMOTE"):
        return "connect"
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT")) or "spark.master" in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    )
    return "submitted" if submitted else "local"


def build_spark(
    settings: SparkSettings | None = None,
    extra_conf: Mapping[str, str] | None = None,
    *,
    quiet: bool = False,
    log_level: str | None = None,
    s3: bool = False,
    time_zone: str | None = None,
) -> SparkSession:
    """Build (or get) the SparkSession, with the Delta connector where this process adds it.

    Args:
        settings: ``master`` (only when nothing else sets one: spark-submit's wins),
            ``remote`` (a Spark Connect URL; also ``SPARK_REMOTE``), ``app_name``, ``conf``.
        extra_conf: More settings, over ``settings.conf``.
        quiet: A JVM this process launches logs errors only.
        log_level: Spark's log level (``spark.log.level``) under spark-submit; None leaves it
            to the cluster's logging setup.
        s3: Load the ``s3a://`` file system's jars into a JVM this process launches.
        time_zone: The session zone, the one the runs cut days in (``features.time_zone``;
            see :func:`check_time_zone`).

    Jars and static settings only take effect in the first session of a process, or of a
    Connect server: a running JVM keeps what it started with.

    Raises:
        EnvironmentProblem: No Java for a local session, or Spark outside 4.0.1-4.2.
    """
    settings = settings or SparkSettings()
    conf = {
        **BASE_CONF,
        **settings.conf,
        **(extra_conf or {}),
        **({TIME_ZONE: time_zone} if time_zone else {}),
    }
    mode = _mode(settings, settings.remote)
    active = SparkSession.getActiveSession()
    if active is not None:
        _apply_sql_conf(
            active, {**(extra_conf or {}), **({TIME_ZONE: time_zone} if time_zone else {})}
        )
        return active
    if mode == "connect":
        spark = _connect_session(settings, conf)
    else:
        spark = _classic_session(settings, conf, mode, quiet=quiet, log_level=log_level, s3=s3)
    check_spark_version(spark.version)
    return spark


def _classic_session(
    settings: SparkSettings,
    conf: dict[str, str],
    mode: str,
    *,
    quiet: bool,
    log_level: str | None,
    s3: bool,
) -> SparkSession:
    """A session whose driver runs in this process (launched here, or by spark-submit)."""
    local = mode == "local"
    if local:
        check_java()
        if quiet:
            quiet_local_logging()
        # Python workers (the CLV fit's numpy sums) run the driver's interpreter, whose
        # environment has numpy, pandas and scipy, not whatever 'python3' is on the PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master and local:
        builder = builder.master(settings.master)
    conf = delta_conf(conf, local=local, s3=s3)
    if local and _LOCAL_CATALOG:
        conf = _LOCAL_CATALOG[0](conf)
    if log_level and not local:  # a JVM launched here logs as quiet says (its log4j2 file)
        conf.setdefault("spark.log.level", log_level)
    for k, v in conf.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Fail at once when nothing listens at a Spark Connect URL (the client would otherwise
    retry for minutes before giving up).

    Raises:
        EnvironmentProblem: The server's address does not answer.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url.split(";")[0])
    host, port = parts.hostname or "localhost", parts.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise EnvironmentProblem(
            f"no Spark Connect server answers at {host}:{port} ({exc.strerror or exc}); start "
            "one ('make connect-server' locally) or fix SPARK_REMOTE / --remote / spark.remote"
        ) from None


def _connect_session(settings: SparkSettings, conf: dict[str, str]) -> SparkSession:
    """A Spark Connect client session; the server's own settings and jars stay as they are."""
    url = settings.remote or os.environ.get("SPARK_REMOTE", "")
    check_reachable(url)
    builder = SparkSession.builder
    if settings.remote:
        builder = builder.remote(settings.remote)
    try:
        spark = builder.getOrCreate()
    except ImportError as exc:
        raise EnvironmentProblem(
            f"a Spark Connect session needs the client libraries ({exc}); install "
            "'rfm-spark[spark]' (pyspark with its connect extras) or 'pyspark-client'"
        ) from None
    _apply_sql_conf(spark, {k: v for k, v in conf.items() if k not in BASE_APP_CONF})
    _ship_package(spark)
    return spark


def _ship_package(spark: SparkSession) -> None:
    """Send this package to the Connect server's Python workers, as ``--py-files`` does under
    spark-submit: the CLV fit's ``mapInPandas`` runs functions of ``rfm_spark`` there."""
    import tempfile

    import rfm_spark

    folder = Path(tempfile.mkdtemp(prefix="rfm-spark-artifact-"))
    try:
        package = Path(rfm_spark.__file__).parent
        archive = shutil.make_archive(
            str(folder / "rfm_spark"), "zip", package.parent, package.name
        )
        spark.addArtifacts(archive, pyfile=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _apply_sql_conf(spark: SparkSession, conf: Mapping[str, str]) -> None:
    """Set the session settings a running session takes; those it refuses (static settings,
    or a server that allows only some) are named once at INFO and left as they are."""
    refused = []
    for k, v in conf.items():
        try:
            if spark.conf.get(k, None) != v:
                spark.conf.set(k, v)
        except Exception:
            refused.append(k)
    if refused:
        log.info("left to the session: %s", ", ".join(sorted(refused)))


def require_delta(spark: SparkSession) -> None:
    """Stop with one line saying how to add the Delta Lake connector when ``spark`` has none.

    The probe is a Delta command on a path that cannot exist: with the connector it reports a
    missing Delta table; without it the command does not parse or its catalog does not load.

    Raises:
        EnvironmentProblem: The session has no working Delta connector.
    """
    probe = f"/rfm-spark-probe-{uuid.uuid4().hex}"
    try:
        spark.sql(f"DESCRIBE DETAIL delta.`{probe}`").collect()
    except Exception as exc:
        if "DELTA_MISSING_DELTA_TABLE" in str(exc) or "is not a Delta table" in str(exc):
            return
        from rfm_spark import jars

        raise EnvironmentProblem(
            "this Spark session has no Delta Lake connector. Fix: 'make install' for local "
            f"runs; 'spark-submit --packages {jars.delta_artifact().coordinate}' on a "
            "cluster (with spark.sql.extensions and the Delta catalog, see docs/cluster.md); "
            "a Databricks runtime has it built in"
        ) from None


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


def default_parallelism(spark: SparkSession) -> int:
    """The cores Spark runs tasks on (its default parallelism), read without ``sparkContext``:
    ``spark.range`` splits into that many partitions when none are given. One tiny job."""
    from pyspark.sql import functions as F

    parts = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("p"))
    row = parts.agg(F.max("p")).first()
    return int(row[0]) + 1 if row and row[0] is not None else 1


def describe(spark: SparkSession) -> str:
    """Where the session runs, for a progress line: ``master local[2]`` or ``Spark Connect``."""
    if is_connect(spark):
        return "Spark Connect"
    return f"master {spark.conf.get('spark.master', None) or '(unknown)'}"


def release() -> None:
    """Close this process's Spark Connect session at the end of a command (the server keeps
    running): its fitted models live in the server's cache until the session goes, and a
    process that leaves them to the interpreter's exit can hang there."""
    if not os.environ.get("SPARK_CONNECT_MODE_ENABLED"):
        return
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    active = RemoteSession.getActiveSession()
    if active is not None:
        active.stop()


def training_partitions(spark: SparkSession, rows: int, per_partition: int = 50_000) -> int:
    """Partitions for ``rows`` cached rows that MLlib iterates over: about ``per_partition``
    each, never more than the cores. A cached DataFrame keeps its shuffle's partitions (200 by
    default; adaptive execution does not coalesce cached plans), and every iteration would run
    that many tasks for a few thousand customers."""
    return max(1, min(default_parallelism(spark), math.ceil(rows / per_partition)))
