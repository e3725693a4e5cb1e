"""The options and helpers every ``rfm-spark`` subcommand parser shares.

Kept apart from :mod:`rfm_spark.cli.parser` so that a command with a parser of its own
(``campaigns``) builds it from the same pieces.
"""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
Every subcommand reads --config FILE (default: built-in defaults) and lets flags override it.
Tables live under the warehouse: WAREHOUSE/<table_name>. Exit codes: 0 ok, 2 usage or config
error, 1 other failure. Add --verbose for Spark's own messages and stack traces.
"""


def spark_conf(value: str) -> tuple[str, str]:
    """One ``--spark-conf key=value``; anything else is a usage error (exit 2)."""
    if "=" not in value:
        raise argparse.ArgumentTypeError(f"--spark-conf takes key=value, got {value!r}")
    k, v = value.split("=", 1)
    return k.strip(), v.strip()


def common(p: argparse.ArgumentParser) -> None:
    """The options every subcommand takes, listed last in its help."""
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", help="YAML config file (see conf/local.yaml)")
    g.add_argument("--warehouse", metavar="DIR", help="folder (or URI) holding the tables")
    g.add_argument("--master", help="Spark master when not run by spark-submit, e.g. local[*]")
    g.add_argument(
        "--remote",
        metavar="URL",
        help="a Spark Connect server, e.g. sc://host:15002 (as SPARK_REMOTE; no local Java)",
    )
    g.add_argument(
        "--spark-conf",
        metavar="KEY=VALUE",
        action="append",
        type=spark_conf,
        default=[],
        help="extra Spark setting; repeatable",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument(
        "--verbose", action="store_true", help="Spark logs and full stack traces on errors"
    )


def command(sub: Any, name: str, *, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with the shared epilog (config, warehouse, exit codes)."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def table_option(p: argparse.ArgumentParser, what: str = "table name") -> None:
    """``--table``: which table under the warehouse the command reads or writes."""
    p.add_argument("--table", metavar="NAME", help=f"{what} (default customer_segments)")


def time_travel_options(p: argparse.ArgumentParser) -> None:
    """``--as-of-version`` or ``--as-of-timestamp``, never both."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--as-of-version", type=int, metavar="V", help="read the table at version V")
    g.add_argument(
        "--as-of-timestamp",
        metavar="TS",
        help="read the table as it was at TS (ISO 8601, UTC unless it has an offset)",
    )
