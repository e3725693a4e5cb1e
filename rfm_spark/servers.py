"""Local servers over the warehouse, for the tools that reach Spark from outside this process.

``python -m rfm_spark.servers connect`` (``make connect-server``) starts a Spark Connect server
in the foreground: commands then run with ``SPARK_REMOTE=sc://127.0.0.1:15002`` from a process
with no Java. ``python -m rfm_spark.servers sql`` (``make sql-server``) names the warehouse's
tables (``rfm-spark register``) and starts Spark's Thrift JDBC/ODBC server on 127.0.0.1:10000,
for beeline and BI tools (``jdbc:hive2://127.0.0.1:10000``). Both start Spark with
``spark-submit`` from the installed pyspark, with the Delta Lake connector's jars on the
driver's class path and the same session settings the product's own sessions get, and listen
on 127.0.0.1 only. With ``output.schema`` set, both keep their catalog in the warehouse's Hive
metastore (``WAREHOUSE/_metastore``), the one local commands use, so they see the same names.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rfm_spark.config import Config, load_config
from rfm_spark.errors import EnvironmentProblem, RfmError, UsageError
from rfm_spark.io.catalog import local_metastore
from rfm_spark.spark_conf import BASE_CONF, check_java, delta_conf

CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_PORT = 15002
SQL_SERVER = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
SQL_PORT = 10000


def spark_submit() -> str:
    """The ``spark-submit`` of the installed pyspark."""
    import pyspark

    found = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    if not found.exists():
        raise EnvironmentProblem(f"no spark-submit at {found}; install 'rfm-spark[spark]'")
    return str(found)


def server_conf(config: Config) -> dict[str, str]:
    """The settings of a server's session: the product's, the config's, the connector's, and
    with ``output.schema`` (and no ``output.catalog``) the warehouse's metastore.

    Raises:
        EnvironmentProblem: Another JVM has the warehouse's metastore open.
    """
    s3 = str(config.warehouse).startswith("s3a://")
    conf = delta_conf({**BASE_CONF, **config.spark.conf}, local=True, s3=s3)
    conf.setdefault("spark.ui.enabled", "false")
    if config.output.schema_name and not config.output.catalog:
        conf = local_metastore(config.warehouse, conf)
    return conf


def _submit(config: Config, main_class: str, conf: dict[str, str]) -> list[str]:
    """``spark-submit --class main_class`` with ``conf``; the jars on the driver's class path
    (a server's catalog loads its classes from there, not from ``--jars``)."""
    conf = dict(conf)
    class_path = conf.pop("spark.driver.extraClassPath", "")
    if not class_path:
        raise EnvironmentProblem(
            "the Delta Lake connector's jars are not fetched; run 'make install' first"
        )
    cmd = [spark_submit(), "--class", main_class, "--master", config.spark.master or "local[*]"]
    cmd += ["--driver-class-path", class_path, "--name", f"{config.spark.app_name}-{main_class}"]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, "spark-internal"]


def connect_command(config: Config, port: int = CONNECT_PORT) -> list[str]:
    """The command line of a Spark Connect server on ``127.0.0.1:port``."""
    conf = server_conf(config)
    conf["spark.connect.grpc.binding.address"] = "127.0.0.1"
    conf["spark.connect.grpc.binding.port"] = str(port)
    return _submit(config, CONNECT_SERVER, conf)


def sql_command(config: Config, port: int = SQL_PORT) -> list[str]:
    """The command line of Spark's Thrift JDBC/ODBC server on ``127.0.0.1:port``."""
    cmd = _submit(config, SQL_SERVER, server_conf(config))
    hive = [f"hive.server2.thrift.port={port}", "hive.server2.thrift.bind.host=127.0.0.1"]
    return [*cmd, *(arg for setting in hive for arg in ("--hiveconf", setting))]


def register_tables(config_file: str) -> int:
    """Name the warehouse's tables with ``rfm-spark register`` in a child process before the
    SQL server opens the metastore (embedded Derby lets one JVM at a time use it).

    Returns:
        The child's exit code (its error, if any, is already on stderr).

    Raises:
        UsageError: The config sets no ``output.schema``: the server would have no names.
        EnvironmentProblem: Another JVM has the warehouse's metastore open.
    """
    config = load_config(config_file)
    if not config.output.schema_name:
        raise UsageError(
            f"the SQL server serves the tables by name, but {config_file} sets no "
            "output.schema. Fix: add 'output: {schema: rfm}' to it"
        )
    server_conf(config)  # fails now, before the child, when the metastore is in use
    cmd = [sys.executable, "-m", "rfm_spark.cli", "register", "--config", config_file]
    return subprocess.run(cmd, env=server_env(), check=False).returncode


def server_env() -> dict[str, str]:
    """The environment of a server: its Python workers (the CLV fit's numpy sums) run this
    interpreter, whose environment has numpy, pandas and scipy."""
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.pop("SPARK_REMOTE", None)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rfm_spark.servers connect|sql [--port N] [--config FILE]``: replace this
    process with the server (it runs in the foreground until stopped); a problem found before
    it starts is one line on stderr and exit code 1 (2 for a usage error)."""
    parser = argparse.ArgumentParser(prog="python -m rfm_spark.servers", description=__doc__)
    parser.add_argument("server", choices=["connect", "sql"], help="which server to start")
    parser.add_argument(
        "--port", type=int, help=f"port on 127.0.0.1 (connect: {CONNECT_PORT}, sql: {SQL_PORT})"
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (warehouse, Spark settings)")
    args = parser.parse_args(argv)
    try:
        check_java()
        if args.server == "sql":
            if not args.config:
                raise UsageError("the SQL server needs --config FILE, with output.schema set")
            code = register_tables(args.config)
            if code != 0:
                return code
        config = load_config(args.config)
        port = args.port or (SQL_PORT if args.server == "sql" else CONNECT_PORT)
        command = sql_command if args.server == "sql" else connect_command
        cmd = command(config, port)
    except RfmError as exc:
        print(f"rfm_spark.servers {args.server}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    url = f"jdbc:hive2://127.0.0.1:{port}" if args.server == "sql" else f"sc://127.0.0.1:{port}"
    print(f"starting the {args.server} server on 127.0.0.1:{port} ({url})", file=sys.stderr)
    os.execve(cmd[0], cmd, server_env())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
