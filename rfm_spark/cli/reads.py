"""The commands that read the table: ``history``, ``export``, ``transitions``, ``report``.

They share the time-travel flags (``--as-of-version`` / ``--as-of-timestamp``), parsed here
once so every reader accepts the same timestamps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from rfm_spark.cli import render
from rfm_spark.cli.runtime import config_from, spark_session, table_store
from rfm_spark.config import parse_date
from rfm_spark.errors import UsageError


def time_travel(args: argparse.Namespace) -> dict[str, Any]:
    """The ``version`` / ``timestamp`` keywords of a store read, from the time-travel flags.

    A timestamp without an offset is taken as UTC so a read does not depend on the machine's
    time zone.

    Raises:
        UsageError: ``--as-of-timestamp`` is not ISO 8601.
    """
    ts = None
    if getattr(args, "as_of_timestamp", None):
        try:
            ts = dt.datetime.fromisoformat(args.as_of_timestamp)
        except ValueError:
            raise UsageError(
                f"--as-of-timestamp {args.as_of_timestamp!r} is not a timestamp; use ISO 8601, "
                "e.g. 2026-11-23T08:00:00 or 2026-11-23T08:00:00+01:00"
            ) from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.timezone.utc)
    return {"version": getattr(args, "as_of_version", None), "timestamp": ts}


def cmd_history(args: argparse.Namespace) -> int:
    """Print the newest commits as a table, or as JSON lines with ``--json``; exit code 0."""
    config = config_from(args, {"output.table": args.table})
    commits = table_store(args, config).history(config.table_path())[: max(1, args.limit)]
    if args.json:
        for line in render.history_json(commits):
            print(line)
    else:
        print(render.history_table(commits))
    return 0


def snapshot_rows(args: argparse.Namespace) -> tuple[dt.date, Any]:
    """``--snapshot-date`` and its rows of ``--table``, as of the time-travel flags."""
    from pyspark.sql import functions as F

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    travel = time_travel(args)
    config = config_from(args, {"output.table": args.table})
    store = table_store(args, config)
    df = store.read(config.table_path(), **travel).filter(F.col("snapshot_date") == F.lit(snapshot))
    return snapshot, df


def cmd_export(args: argparse.Namespace) -> int:
    """Write one snapshot's customers (optionally some segments) to a file; exit code 0."""
    from pyspark.sql import functions as F

    from rfm_spark.io.exports import write_result

    snapshot, df = snapshot_rows(args)
    if args.segment:
        df = df.filter(F.col("segment").isin(list(args.segment)))
    df = df.orderBy("customer_id")
    write_result(df, args.output)
    count = df.count()
    if count == 0:
        print(
            f"note: no customers in snapshot {snapshot}"
            + (f" and segment(s) {args.segment}" if args.segment else ""),
            file=sys.stderr,
        )
    print(f"wrote {count:,} customers of snapshot {snapshot} to {args.output}")
    return 0


def cmd_transitions(args: argparse.Namespace) -> int:
    """Print the transition matrix, or the movers with ``--from``/``--to``; exit code 0."""
    from rfm_spark import transitions as tr
    from rfm_spark.cli.render import crosstab_table, matrix_table
    from rfm_spark.io.exports import write_result
    from rfm_spark.io.transitions_table import load_pairs, materialize
    from rfm_spark.pipeline import new_run_id

    as_of = parse_date(args.as_of, "--as-of")
    travel = time_travel(args)
    config = config_from(args, {"output.table": args.table})
    days = args.days if args.days is not None else config.history.transition_days
    store = table_store(args, config)
    pair, pairs = load_pairs(
        store, config.table_path(), as_of=as_of, days=days, by=args.by, **travel
    )
    pairs = pairs.cache()
    if pair.note:
        print(f"note: {pair.note}", file=sys.stderr)
    matrix = tr.transition_matrix(pairs)
    rows = matrix.collect()
    title = f"{args.by} transitions from {pair.earlier} to {pair.later}"
    if args.from_segment is None and args.to_segment is None:
        print(f"\n{title}:\n")
        table = crosstab_table(rows) if args.grid else matrix_table(rows)
        print(render.format_table(*table))
        result = matrix
    else:
        tr.check_labels(rows, from_segment=args.from_segment, to_segment=args.to_segment)
        result = _print_movers(args, pairs, title)
    if args.output:
        write_result(result, args.output)
        print(f"wrote {args.output}")
    if args.materialize:
        version = materialize(store, config.warehouse, matrix, pair, new_run_id(), by=args.by)
        print(f"segment_transitions version {version}")
    pairs.unpersist()
    return 0


def _print_movers(args: argparse.Namespace, pairs: Any, title: str) -> Any:
    """Count the movers of ``--from``/``--to`` and list the first ones unless going to a file.

    Returns:
        The movers DataFrame, for ``--output``.
    """
    from rfm_spark import transitions as tr

    movers = tr.movers(pairs, from_segment=args.from_segment, to_segment=args.to_segment)
    n = movers.count()
    what = f"from {args.from_segment or 'any'} to {args.to_segment or 'any'}"
    print(f"{n:,} customers moved {what} ({title})")
    if not args.output:
        for line in render.movers_lines(movers.limit(render.MOVERS_SHOWN).collect(), n):
            print(line)
    return movers


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of one snapshot and print where; exit code 0."""
    from rfm_spark.pipeline.report import run_report
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    if args.outliers < 0 or (args.days is not None and args.days < 1):
        raise UsageError("--outliers must be 0 or more and --days at least 1")
    config = config_from(args, {"output.table": args.table})
    progress = Progress("report", quiet=args.quiet)
    spark = spark_session(config, args)
    out = args.out or f"report-{snapshot}.html"
    result = run_report(
        spark, config, snapshot, out, days=args.days, outliers=args.outliers, progress=progress
    )
    print(f"wrote {result.path} ({result.bytes / 1024:,.0f} KiB, {result.customers:,} customers)")
    return 0
