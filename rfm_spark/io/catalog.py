"""Table names in a catalog: the warehouse's tables by name as well as by path.

With ``output.schema`` set (say ``rfm``), every table the product commits at
``WAREHOUSE/<table>`` is also registered as ``rfm.<table>`` (``main.rfm.<table>`` with
``output.catalog: main``, e.g. Unity Catalog): an external Delta table on that location, made
once per table and process after its commit with ``CREATE SCHEMA IF NOT EXISTS`` and
``CREATE TABLE IF NOT EXISTS ... USING DELTA LOCATION``. The path stays the source of truth:
the name points at it, the columns, partitions and history are the Delta log's, and dropping
the name leaves the data.

The names go to the session's catalog: a cluster's or a Spark Connect server's own (Hive
metastore, Glue, Unity Catalog), and for a local session, a JVM this process launches, a Hive
metastore in embedded Derby under ``WAREHOUSE/_metastore`` (:func:`local_metastore`), so that
the names last between commands. Embedded Derby lets one JVM at a time open it: a second one
is refused with one line saying what to do (:func:`check_metastore_free`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from rfm_spark.config import Config
from rfm_spark.errors import ConfigError, EnvironmentProblem, TableError, java_error_line
from rfm_spark.io.files import missing_path
from rfm_spark.paths import absolute, is_uri
from rfm_spark.session import use_local_catalog
from rfm_spark.sqltext import quote, sql_string

METASTORE = "_metastore"
CATALOG_IMPLEMENTATION = "spark.sql.catalogImplementation"
CONNECTION_URL = "spark.hadoop.javax.jdo.option.ConnectionURL"
DRIVER_JAVA_OPTIONS = "spark.driver.defaultJavaOptions"
# how long the JVM of a command that just ended may keep the metastore open
LINGER_SECONDS = 10.0
_NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "DELTA_TABLE_NOT_FOUND", "not found")


@dataclass(frozen=True)
class Naming:
    """Where the tables of one warehouse get their names.

    Attributes:
        warehouse: The warehouse, absolute (``absolute``), without a trailing slash.
        schema: ``output.schema``.
        catalog: ``output.catalog``; None for the session's current catalog.
    """

    warehouse: str
    schema: str
    catalog: str | None = None

    @property
    def parts(self) -> list[str]:
        """``[schema]`` or ``[catalog, schema]``."""
        return [p for p in (self.catalog, self.schema) if p]

    @property
    def namespace(self) -> str:
        """The schema as SQL, its parts quoted (``rfm`` or ``main.rfm``)."""
        return ".".join(quote(p) for p in self.parts)

    def name(self, table: str) -> str:
        """The name of the table ``table`` of the warehouse as SQL (quoted)."""
        return f"{self.namespace}.{quote(table)}"

    def label(self, table: str) -> str:
        """The name as people write it: ``rfm.customer_segments``."""
        return ".".join([*self.parts, table])


# warehouse -> its naming, for the store's commits (name_tables); locations named so far
_NAMINGS: dict[str, Naming] = {}
_NAMED: set[str] = set()
_SCHEMAS: set[str] = set()


def naming(config: Config) -> Naming | None:
    """The naming of ``config`` (None without ``output.schema``)."""
    schema = config.output.schema_name
    if not schema:
        return None
    return Naming(absolute(config.warehouse).rstrip("/"), schema, config.output.catalog)


def name_tables(config: Config) -> Naming | None:
    """Name every table this process commits under ``config.warehouse`` from now on.

    Without ``output.schema`` nothing changes (and no catalog is touched). Call it before the
    session is built: a local session then keeps its catalog in the warehouse's metastore
    (unless ``output.catalog`` names a catalog of its own).

    Returns:
        The naming, or None without ``output.schema``.
    """
    found = naming(config)
    if found is None:
        return None
    _NAMINGS[found.warehouse] = found
    if found.catalog is None:
        use_local_catalog(functools.partial(local_metastore, config.warehouse))
    return found


def forget(found: Naming) -> None:
    """Stop naming the tables of ``found.warehouse`` (a process that moves on to another)."""
    _NAMINGS.pop(found.warehouse, None)
    use_local_catalog(None)


def after_commit(spark: SparkSession, path: str) -> None:
    """Make sure the table just committed at ``path`` has its name, when its warehouse has a
    naming (:func:`name_tables`); once per table and process.

    Raises:
        TableError: The catalog refused the name (the commit itself is done).
        ConfigError: The name already points at another location.
    """
    location = absolute(path).rstrip("/")
    parent, _, table = location.rpartition("/")
    found = _NAMINGS.get(parent)
    if found is not None and location not in _NAMED:
        register(spark, found, table)


def register(spark: SparkSession, found: Naming, table: str) -> bool:
    """Register the Delta table ``table`` of the warehouse under its name.

    Returns:
        True when the name was there already (on this location), False when it was made now.

    Raises:
        TableError: The catalog refused the schema or the table.
        ConfigError: The name already points at another location.
    """
    location = f"{found.warehouse}/{table}"
    name = found.name(table)
    try:
        if found.namespace not in _SCHEMAS:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {found.namespace}")
            _SCHEMAS.add(found.namespace)
        existing = _location(spark, name)
        if existing is None:
            spark.sql(
                f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION {sql_string(location)}"
            )
    except Exception as exc:
        raise TableError(
            f"naming the Delta table at {location} {name} failed: "
            f"{java_error_line(exc) or type(exc).__name__}. The table itself is written; fix "
            "the catalog (or output.schema / output.catalog), then run 'rfm-spark register'"
        ) from None
    if existing is not None and _plain(existing) != _plain(location):
        raise ConfigError(
            f"{name} already names the table at {existing}, not {location}: another warehouse "
            f"uses output.schema {found.schema!r}. Fix: give each warehouse its own "
            f"output.schema, or DROP TABLE {name} (its data stays) and run 'rfm-spark register'"
        )
    _NAMED.add(location)
    return existing is not None


def _location(spark: SparkSession, name: str) -> str | None:
    """Where the table ``name`` lives; None when there is no such table."""
    try:
        row = spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()
    except Exception as exc:
        if any(code in str(exc) for code in _NOT_FOUND):
            return None
        raise
    return str(row[0]) if row is not None else None


def _plain(location: str) -> str:
    """A location without ``file:`` and a trailing slash, to compare two spellings of one."""
    if location.startswith("file:"):
        location = urlparse(location).path
    return location.rstrip("/")


def delta_tables(spark: SparkSession, warehouse: str) -> list[str]:
    """The Delta tables directly under ``warehouse`` (folders with a ``_delta_log``), by
    folder name; a listing of their logs' commit files, no file opened."""
    root = absolute(warehouse).rstrip("/")
    try:
        rows = (
            spark.read.format("binaryFile")
            .load(f"{root}/*/_delta_log/*.json")
            .select("path")
            .collect()
        )
    except Exception as exc:
        if missing_path(exc):
            return []
        raise
    return sorted({str(r[0]).rsplit("/_delta_log/", 1)[0].rsplit("/", 1)[-1] for r in rows})


def register_warehouse(spark: SparkSession, found: Naming) -> list[tuple[str, str, bool]]:
    """Register every Delta table directly under the warehouse (one written before
    ``output.schema`` was set, or whose name was dropped).

    Returns:
        ``(name, location, already named)`` per table, by table name.
    """
    out = []
    for table in delta_tables(spark, found.warehouse):
        existed = register(spark, found, table)
        out.append((found.label(table), f"{found.warehouse}/{table}", existed))
    return out


# ---- the metastore of a local session ------------------------------------------------------


def local_metastore(warehouse: str, conf: Mapping[str, str]) -> dict[str, str]:
    """``conf`` with a Hive metastore in embedded Derby under ``WAREHOUSE/_metastore``: the
    catalog of a local session, and of the SQL and Connect servers, when tables are named.

    ``_metastore/derby`` is the database, ``derby.log`` stays next to it, and
    ``spark-warehouse`` holds what a schema made there keeps (nothing of the product's). A
    catalog of the user's own (``spark.sql.catalogImplementation`` in ``conf``) is left alone.

    Raises:
        ConfigError: The warehouse is not on this machine's disk.
        EnvironmentProblem: Another JVM has the metastore open.
    """
    out = dict(conf)
    if out.get(CATALOG_IMPLEMENTATION):
        return out
    root = f"{_local_folder(warehouse)}/{METASTORE}"
    out[CATALOG_IMPLEMENTATION] = "hive"
    out.setdefault(CONNECTION_URL, f"jdbc:derby:;databaseName={root}/derby;create=true")
    out.setdefault("spark.sql.warehouse.dir", f"{root}/spark-warehouse")
    java = out.get(DRIVER_JAVA_OPTIONS, "")
    out[DRIVER_JAVA_OPTIONS] = f'{java} "-Dderby.system.home={root}"'.strip()
    database = _derby_database(out[CONNECTION_URL])
    if database:
        check_metastore_free(database)
    return out


def _local_folder(warehouse: str) -> str:
    """The warehouse as an absolute local path; a ConfigError for an object store."""
    if warehouse.startswith("file:"):
        return urlparse(warehouse).path.rstrip("/")
    if is_uri(warehouse):
        raise ConfigError(
            f"output.schema: a local session keeps the table names in a metastore under the "
            f"warehouse, which must then be on this machine's disk, not {warehouse}. Fix: run "
            "under spark-submit or a Spark Connect server (their catalog is used), or set "
            "spark.sql.catalogImplementation and a metastore of your own in spark.conf"
        )
    return absolute(warehouse).rstrip("/")


def _derby_database(url: str) -> str | None:
    """The folder of an embedded Derby database URL (``jdbc:derby:;databaseName=X;...`` or
    ``jdbc:derby:X;...``); None for any other metastore."""
    if not url.startswith("jdbc:derby:") or url.startswith("jdbc:derby://"):
        return None
    head, *attributes = url[len("jdbc:derby:") :].split(";")
    named = [a.split("=", 1)[1] for a in attributes if a.startswith("databaseName=")]
    return (named or [head])[0] or None


def check_metastore_free(database: str, wait: float = LINGER_SECONDS) -> None:
    """Refuse, in one line, an embedded Derby metastore that another JVM has open.

    Derby holds an exclusive lock on ``dbex.lck`` while a JVM has the database open; trying
    that lock here costs no JVM start, and keeps a Java stack trace (or a misleading error of
    the first catalog look-up) from being what the user sees. The lock is tried for ``wait``
    seconds: the JVM of a command that just ended holds it until it has shut down.

    Raises:
        EnvironmentProblem: The lock is held by another process.
    """
    deadline = time.monotonic() + wait
    while not _derby_free(Path(database) / "dbex.lck"):
        if time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"the metastore of the table names ({database}) is open in another process: "
                "its embedded Derby lets one JVM at a time use it (the SQL server, a Connect "
                "server or another command of this warehouse). Fix: stop that process or let it "
                "finish, or run this command through the Connect server started with this "
                "config (SPARK_REMOTE=sc://127.0.0.1:15002)"
            )
        time.sleep(0.25)


def _derby_free(lock: Path) -> bool:
    """Whether no process holds Derby's exclusive lock on ``lock`` (True when it cannot be
    tried: no POSIX locks here, no such file yet, or not ours to open)."""
    try:
        import fcntl
    except ImportError:  # Windows: Derby reports it itself
        return True
    try:
        handle = lock.open("rb+")
    except OSError:
        return True
    with handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return True
