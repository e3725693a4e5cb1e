"""``rfm-spark campaigns run`` and ``evaluate``: audiences with A/B arms, and their uplift.

Its parser lives here, built from the shared pieces in :mod:`rfm_spark.cli.options`, because
``campaigns`` has actions of its own: ``run`` and ``evaluate``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli.machine import emit, json_option
from rfm_spark.cli.options import command, common
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def add_campaigns(sub: Any) -> None:
    """``campaigns run`` and ``campaigns evaluate``."""
    parser = command(
        sub,
        "campaigns",
        help="build campaign audiences with A/B control groups from the segments",
        description="Campaigns from a YAML file (see docs/campaigns.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    run = actions.add_parser(
        "run",
        help="build the day's audiences into campaign_audiences and write the contact lists",
        description=(
            "For the snapshot of --date, take each campaign's audience, give each customer to "
            "at most one campaign (the first in the file) under the frequency caps, split it "
            "into control and treatment by a salted hash, replace that day of the "
            "campaign_audiences table, and write each campaign's treatment arm to "
            "DIR/<campaign>-<date>.csv (or .parquet)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--campaigns", required=True, metavar="FILE", help="the campaign YAML file")
    run.add_argument("--date", required=True, metavar="D", help="the snapshot date, YYYY-MM-DD")
    run.add_argument("--out", required=True, metavar="DIR", help="folder for the contact lists")
    run.add_argument("--format", choices=["csv", "parquet"], default="csv", help="of the lists")
    run.add_argument(
        "--customers-input",
        metavar="PATH",
        help="customers table with the opt-in and attribute columns (input.customers_path)",
    )
    json_option(run)
    common(run)
    run.set_defaults(func=cmd_campaigns_run)
    ev = actions.add_parser(
        "evaluate",
        help="treatment against control: conversion and revenue uplift per segment",
        description=(
            "Read the transactions in the --window-days after each contact day of a campaign "
            "and compare its arms per segment and overall: conversion (two-proportion z-test) "
            "and revenue per customer (Welch's t-test), each with a 95%% interval and p-value, "
            "the customers per arm needed to detect the conversion effect, and a warning when "
            "the arms are off the planned split (sample-ratio mismatch)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--campaigns", required=True, metavar="FILE", help="the campaign YAML file")
    ev.add_argument("--campaign", required=True, metavar="NAME", help="the campaign to evaluate")
    ev.add_argument(
        "--window-days", type=int, default=14, metavar="N", help="days after contact (default 14)"
    )
    ev.add_argument("--input", metavar="PATH", help="the transactions (input.path)")
    common(ev)
    ev.set_defaults(func=cmd_campaigns_evaluate)


def cmd_campaigns_run(args: argparse.Namespace) -> int:
    """Run the campaigns of one day and print customers per campaign and arm; exit code 0."""
    from rfm_spark.campaigns import load_campaigns
    from rfm_spark.cli.render import format_table
    from rfm_spark.pipeline import new_run_id
    from rfm_spark.pipeline.campaigns import run_campaigns
    from rfm_spark.progress import Progress

    day = parse_date(args.date, "--date")
    spec = load_campaigns(args.campaigns)  # a bad file fails before Spark starts
    config = config_from(args, {"input.customers_path": args.customers_input})
    progress = Progress("campaigns", quiet=args.quiet)
    spark = spark_session(config, args)
    result = run_campaigns(
        spark, config, spec, day, args.out, fmt=args.format, run_id=new_run_id(), progress=progress
    )
    if args.json:
        emit("campaigns run", result, date=day)
        return 0
    rows = [
        [c.name, c.channel, f"{result.counts.get((c.name, 'treatment'), 0):,}",
         f"{result.counts.get((c.name, 'control'), 0):,}", result.files[c.name]]
        for c in spec.campaigns
    ]  # fmt: skip
    print(format_table(["campaign", "channel", "treatment", "control", "contact list"], rows))
    print(f"\n{result.table} version {result.version}, date {day}")
    return 0


def cmd_campaigns_evaluate(args: argparse.Namespace) -> int:
    """Print the arms' comparison per segment and the split check; exit code 0."""
    from rfm_spark.campaigns import load_campaigns
    from rfm_spark.cli.render import evaluation_table
    from rfm_spark.errors import UsageError
    from rfm_spark.pipeline.evaluate import evaluate_campaign

    spec = load_campaigns(args.campaigns)
    campaign = next((c for c in spec.campaigns if c.name == args.campaign), None)
    if campaign is None:
        names = ", ".join(c.name for c in spec.campaigns)
        raise UsageError(f"no campaign {args.campaign!r} in {args.campaigns}; it has {names}")
    if args.window_days < 1:
        raise UsageError("--window-days must be at least 1")
    config = config_from(args, {"input.path": args.input})
    spark = spark_session(config, args)
    print(evaluation_table(evaluate_campaign(spark, config, campaign, args.window_days)))
    return 0
