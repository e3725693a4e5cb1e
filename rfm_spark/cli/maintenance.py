"""Table upkeep: ``vacuum`` (delete old files) and ``optimize`` (compact and Z-order).

Neither changes the data a reader sees; both work through the table store so they behave the
same on the Spark connector and the delta-rs fallback.
"""

from __future__ import annotations

import argparse

from rfm_spark.cli import render
from rfm_spark.cli.runtime import config_from, table_store

# serve the common queries: "customers of segment S" and "this customer's history"
DEFAULT_ZORDER = ["segment", "customer_id"]


def cmd_vacuum(args: argparse.Namespace) -> int:
    """List (or with ``--apply`` delete) files outside the retention; exit code 0."""
    from rfm_spark.history import vacuum

    config = config_from(args, {"output.table": args.table})
    result = vacuum(
        table_store(args, config),
        config.table_path(),
        config.history,
        retain_hours=args.retain_hours,
        dry_run=not args.apply,
    )
    print(render.vacuum_report(result))
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    """Compact the table's files, Z-ordered unless ``--no-zorder``; exit code 0."""
    config = config_from(args, {"output.table": args.table})
    zorder = [] if args.no_zorder else (args.zorder_by or DEFAULT_ZORDER)
    store = table_store(args, config)
    path = config.table_path()
    metrics = store.optimize(path, zorder_by=zorder)
    how = f"Z-ordered by {', '.join(zorder)}" if zorder else "compacted"
    print(
        f"{path} {how}: {metrics['files_removed']} file(s) rewritten into "
        f"{metrics['files_added']}; version {store.version(path)}"
    )
    return 0
