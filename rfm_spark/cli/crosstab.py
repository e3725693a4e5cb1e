"""``rfm-spark crosstab``: RFM segments against one attribute dimension of a snapshot.

Hybrid segmentation at a glance: how many customers (or what share of each RFM segment) fall in
each attribute segment, e.g. champions by market or at-risk customers by age band.
"""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli.options import command, common, table_option, time_travel_options


def add_crosstab(sub: Any) -> None:
    """``crosstab --snapshot-date D --by DIMENSION [--share] [--output FILE]``."""
    ct = command(
        sub,
        "crosstab",
        help="RFM segment x attribute segment counts of a snapshot (hybrid segmentation)",
        description=(
            "Count the customers of one snapshot per RFM segment and segment of one attribute "
            "dimension (a key of attribute_segments, e.g. age_band or market; see "
            "docs/attributes.md). Customers without that dimension count as '(none)'."
        ),
    )
    ct.add_argument("--snapshot-date", required=True, metavar="D", help="the snapshot")
    ct.add_argument("--by", required=True, metavar="DIMENSION", help="attribute dimension")
    ct.add_argument(
        "--share", action="store_true", help="each RFM segment's row as shares instead of counts"
    )
    ct.add_argument("--output", metavar="FILE", help="also write the counts to FILE.csv/.parquet")
    time_travel_options(ct)
    table_option(ct, "segments table")
    common(ct)
    ct.set_defaults(func=cmd_crosstab)


def cmd_crosstab(args: argparse.Namespace) -> int:
    """Print the grid of one snapshot and dimension; exit code 0."""
    from rfm_spark.attributes import crosstab, dimensions_of
    from rfm_spark.cli.reads import snapshot_rows
    from rfm_spark.cli.render import attribute_grid, format_table
    from rfm_spark.errors import UsageError
    from rfm_spark.io.exports import write_result

    snapshot, df = snapshot_rows(args)
    counts = crosstab(df, args.by).cache()
    rows = counts.collect()
    if not rows:
        raise UsageError(f"no customers in snapshot {snapshot}; see 'rfm-spark history'")
    known = dimensions_of(df)
    if args.by not in known:
        have = ", ".join(known) if known else "none (set segments.attributes and segment again)"
        raise UsageError(
            f"snapshot {snapshot} has no attribute dimension {args.by!r}; it has {have}"
        )
    print(
        f"\nsnapshot {snapshot}: RFM segment x {args.by}"
        + (" (share of row)" if args.share else "")
    )
    print(format_table(*attribute_grid(rows, share=args.share)))
    if args.output:
        write_result(counts.orderBy("segment", "attribute"), args.output)
        print(f"wrote {args.output}")
    counts.unpersist()
    return 0
