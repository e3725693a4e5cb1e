"""``rfm-spark campaigns run``: a day's campaign audiences, A/B arms and contact lists.

Its parser lives here (built with the shared helpers :mod:`rfm_spark.cli.parser` passes in)
because ``campaigns`` has actions of its own; ``evaluate`` joins ``run`` later.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def add_campaigns(
    sub: Any,
    command: Callable[..., argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``campaigns run``; ``command`` and ``common`` are the parser's shared helpers."""
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
    common(run)
    run.set_defaults(func=cmd_campaigns_run)


def cmd_campaigns_run(args: argparse.Namespace) -> int:
    """Run the campaigns of one day and print customers per campaign and arm; exit code 0."""
    from rfm_spark.campaigns import load_campaigns
    from rfm_spark.cli.render import format_table
    from rfm_spark.pipeline import new_run_id
    from rfm_spark.pipeline.campaigns import run_campaigns
    from rfm_spark.progress import Progress

    day = parse_date(args.date, "--date")
    spec = load_campaigns(args.campaigns)  # a bad file fails before Spark starts
    config = config_from(args, {})
    progress = Progress("campaigns", quiet=args.quiet)
    spark = spark_session(config, args)
    result = run_campaigns(
        spark, config, spec, day, args.out, fmt=args.format, run_id=new_run_id(), progress=progress
    )
    rows = [
        [c.name, c.channel, f"{result.counts.get((c.name, 'treatment'), 0):,}",
         f"{result.counts.get((c.name, 'control'), 0):,}", result.files[c.name]]
        for c in spec.campaigns
    ]  # fmt: skip
    print(format_table(["campaign", "channel", "treatment", "control", "contact list"], rows))
    print(f"\n{result.table} version {result.version}, date {day}")
    return 0
