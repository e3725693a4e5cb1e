"""What every command needs from its parsed flags: the config, a Spark session, the store.

Shared so each command applies ``--config``, ``--warehouse``, ``--master`` and ``--spark-conf``
the same way, and so Spark is only started once a command has checked its own flags (a usage
error then costs no JVM start).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from rfm_spark.config import Config, load_config

if TYPE_CHECKING:
    from rfm_spark.io.store import TableStore

log = logging.getLogger("rfm_spark.cli")


def config_from(args: argparse.Namespace, overrides: dict[str, Any]) -> Config:
    """The config file (or the defaults) with the common flags and ``overrides`` applied.

    Args:
        args: Parsed flags, including the common options.
        overrides: Dotted config keys to flag values; ``None`` keeps the configured value.

    Returns:
        The validated config; a bad value raises the config's own usage error (exit 2).
    """
    config = load_config(args.config)
    spark_conf = dict(config.spark.conf)
    spark_conf.update(dict(args.spark_conf))
    common = {
        "warehouse": args.warehouse,
        "spark.master": args.master,
        "spark.remote": getattr(args, "remote", None),
        "spark.conf": spark_conf if args.spark_conf else None,
    }
    return config.with_overrides({**common, **overrides})


def _uses_s3a(config: Config) -> bool:
    """Whether the run reads or writes ``s3a://`` (then the session loads hadoop-aws)."""
    paths = (config.warehouse, config.input.path, config.input.customers_path)
    return any(str(p or "").startswith("s3a://") for p in paths)


def _log_level(args: argparse.Namespace) -> str | None:
    """Spark's log level: ``--verbose`` INFO, ``--quiet`` ERROR, else the cluster's own."""
    if args.verbose:
        return "INFO"
    return "ERROR" if getattr(args, "quiet", False) else None


def spark_session(config: Config, args: argparse.Namespace) -> Any:
    """The Spark session: local, under spark-submit, or a Spark Connect client.

    A JVM this process launches logs errors only (unless ``--verbose``): the CLI reports
    failures itself. Under spark-submit Spark's log level is the cluster's, unless ``--quiet``
    or ``--verbose`` say otherwise; a Connect server's logging is the server's.

    Args:
        config: The run's config (Spark settings, paths that may need hadoop-aws).
        args: Parsed flags (``--verbose``, ``--quiet`` and the command's name).

    Returns:
        The session, after one progress line naming Spark's version and where it runs.
    """
    from rfm_spark.io.catalog import name_tables
    from rfm_spark.session import build_spark, describe

    name_tables(config)  # output.schema: the tables' names, and the warehouse's metastore
    spark = build_spark(
        config.spark,
        quiet=not args.verbose,
        log_level=_log_level(args),
        s3=_uses_s3a(config),
        time_zone=config.features.time_zone,
    )
    if not getattr(args, "quiet", False):
        log.info("Spark %s, %s", spark.version, describe(spark))
    return spark


def table_store(args: argparse.Namespace, config: Config) -> TableStore:
    """The Delta table store, on a fresh Spark session."""
    from rfm_spark.io.store import open_store

    return open_store(spark_session(config, args))
