"""The commands that run the pipeline and write data: ``generate``, ``segment``, ``backfill``.

Each turns its flags into config overrides, starts Spark, calls the pipeline and prints its
report; the pipeline itself knows nothing of argparse or the terminal.
"""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli import render
from rfm_spark.cli.machine import emit
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def segment_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set by the options ``segment`` and ``backfill`` share."""
    return {
        "input.path": args.input,
        "input.format": args.input_format,
        "input.customers_path": args.customers_input,
        "features.lookback_days": args.lookback_days,
        "scoring.method": args.scoring,
        "scoring.bins": args.bins,
        "scoring.partition_by": args.partition_by,
        "segments.scheme": args.scheme,
        "segments.attributes": args.attributes,
        "output.table": args.table,
        "output.idempotency_key": args.idempotency_key,
    }


def cmd_generate(args: argparse.Namespace) -> int:
    """Write the demo transactions, customers and products; exit code 0."""
    from rfm_spark.datagen.effect import PlantedEffect
    from rfm_spark.io.demo_data import generate
    from rfm_spark.progress import Progress

    end_date = parse_date(args.end_date, "--end-date") if args.end_date else None
    config = config_from(
        args,
        {
            "demo.data_dir": args.out,
            "demo.customers": args.customers,
            "demo.days": args.days,
            "demo.end_date": end_date,
            "demo.seed": args.seed,
        },
    )
    demo = config.demo
    progress = Progress("generate", quiet=args.quiet)
    spark = spark_session(config, args)
    with progress.step(
        f"demo data: {demo.customers:,} customers over {demo.days} days in {demo.data_dir}"
    ):
        summary = generate(
            spark,
            demo.data_dir,
            customers=demo.customers,
            days=demo.days,
            end_date=demo.end_date,
            seed=demo.seed,
            partitions=args.partitions,
            force=args.force,
            effect=PlantedEffect(**demo.effect.model_dump()) if demo.effect else None,
        )
    what = (
        f"{summary.transactions:,} transactions, {summary.customers:,} customers and "
        f"{summary.products:,} products ({summary.start_date} to {summary.end_date}, exclusive) "
        f"under {summary.out_dir}"
    )
    if summary.written:
        print(f"wrote {what}")
    else:
        print(f"nothing written: the same data is already there ({what}); --force writes it again")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    """Score and segment one snapshot and commit it; exit code 0."""
    from rfm_spark.pipeline import run_segment
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    rebuild = args.mode == "rebuild"
    mode = "incremental" if rebuild else args.mode
    overrides = {"features.mode": mode, "features.files_per_batch": args.files_per_batch}
    config = config_from(args, {**segment_overrides(args), **overrides})
    progress = Progress("segment", quiet=args.quiet)
    spark = spark_session(config, args)
    result = run_segment(spark, config, snapshot, progress=progress, rebuild=rebuild)
    if args.json:
        emit("segment", result)
        return 0
    print(render.segment_report(result, config.output.idempotency_key))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Build every snapshot from ``--start`` to ``--end``; exit code 0."""
    from rfm_spark.pipeline import run_backfill, snapshot_dates
    from rfm_spark.progress import Progress

    dates = snapshot_dates(
        parse_date(args.start, "--start"), parse_date(args.end, "--end"), args.step_days
    )
    config = config_from(args, segment_overrides(args))
    progress = Progress("backfill", quiet=args.quiet)
    spark = spark_session(config, args)
    result = run_backfill(spark, config, dates, single_commit=args.single_commit, progress=progress)
    if args.json:
        emit("backfill", result)
        return 0
    print(render.backfill_report(result, dates))
    return 0
