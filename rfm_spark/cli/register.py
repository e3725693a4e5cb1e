"""``rfm-spark register``: name every Delta table of the warehouse in the catalog.

For a warehouse written before ``output.schema`` was set (later commits name their tables
themselves), or whose names were dropped. See docs/sql.md "By name: the catalog and JDBC".
"""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli.options import command, common


def add_register(sub: Any) -> None:
    """``register [--schema NAME] [--catalog NAME]``."""
    reg = command(
        sub,
        "register",
        help="name every Delta table of the warehouse in the catalog (output.schema)",
        description=(
            "Register each Delta table directly under the warehouse as an external table "
            "SCHEMA.<table> (CATALOG.SCHEMA.<table> with output.catalog) on its location; a "
            "name already there is kept. Locally the names are kept in the warehouse's Hive "
            "metastore (WAREHOUSE/_metastore), so that later commands and the SQL server see "
            "them."
        ),
    )
    reg.add_argument("--schema", metavar="NAME", help="the schema (output.schema)")
    reg.add_argument("--catalog", metavar="NAME", help="the catalog (output.catalog)")
    common(reg)
    reg.set_defaults(func=cmd_register)


def cmd_register(args: argparse.Namespace) -> int:
    """Register the warehouse's tables and print each name and location; exit code 0."""
    from rfm_spark.cli.render import format_table
    from rfm_spark.cli.runtime import config_from, spark_session
    from rfm_spark.errors import UsageError
    from rfm_spark.io.catalog import name_tables, register_warehouse

    config = config_from(args, {"output.schema": args.schema, "output.catalog": args.catalog})
    found = name_tables(config)
    if found is None:
        raise UsageError(
            "register names the tables in output.schema, which is not set. Fix: add "
            "'output: {schema: rfm}' to the config (and 'catalog: main' for Unity Catalog), "
            "or pass --schema rfm"
        )
    named = register_warehouse(spark_session(config, args), found)
    if not named:
        print(f"no Delta tables under {found.warehouse}")
        return 0
    rows = [(name, location, "kept" if kept else "new") for name, location, kept in named]
    print(format_table(["name", "location", "name was"], rows))
    print(f"{len(named)} table(s) named in {'.'.join(found.parts)}")
    return 0
