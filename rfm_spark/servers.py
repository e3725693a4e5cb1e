"""Local servers over the warehouse, for the tools that reach Spark from outside this process.

``python -m rfm_spark.servers connect`` (``make connect-server``) starts a Spark Connect server
in the foreground: commands then run with ``SPARK_REMOTE=sc://127.0.0.1:15002`` from a process
with no Java. Both start Spark with ``spark-submit`` from the installed pyspark, with the Delta
Lake connector's jars on the driver's class path and the same session settings the product's
own sessions get, and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rfm_spark.config import Config, load_config
from rfm_spark.errors import EnvironmentProblem
from rfm_spark.session import BASE_CONF, check_java, delta_conf

CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_PORT = 15002


def spark_submit() -> str:
    """The ``spark-submit`` of the installed pyspark."""
    import pyspark

    found = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    if not found.exists():
        raise EnvironmentProblem(f"no spark-submit at {found}; install 'rfm-spark[spark]'")
    return str(found)


def server_conf(config: Config) -> dict[str, str]:
    """The settings of a server's session: the product's, the config's, the connector's."""
    s3 = str(config.warehouse).startswith("s3a://")
    conf = delta_conf({**BASE_CONF, **config.spark.conf}, local=True, s3=s3)
    conf.setdefault("spark.ui.enabled", "false")
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


def server_env() -> dict[str, str]:
    """The environment of a server: its Python workers (the CLV fit's numpy sums) run this
    interpreter, whose environment has numpy, pandas and scipy."""
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.pop("SPARK_REMOTE", None)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rfm_spark.servers connect [--port N] [--config FILE]``: replace this process
    with the server (it runs in the foreground until stopped)."""
    parser = argparse.ArgumentParser(prog="python -m rfm_spark.servers", description=__doc__)
    parser.add_argument("server", choices=["connect"], help="which server to start")
    parser.add_argument("--port", type=int, help=f"port on 127.0.0.1 (connect: {CONNECT_PORT})")
    parser.add_argument("--config", metavar="FILE", help="YAML config (warehouse, Spark settings)")
    args = parser.parse_args(argv)
    check_java()
    config = load_config(args.config)
    cmd = connect_command(config, args.port or CONNECT_PORT)
    print(
        f"starting the {args.server} server on 127.0.0.1:{args.port or CONNECT_PORT}",
        file=sys.stderr,
    )
    os.execve(cmd[0], cmd, server_env())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
