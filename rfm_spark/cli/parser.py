"""The ``rfm-spark`` argument parser, one small function per subcommand.

The flags, help texts and defaults are the CLI's contract with users and schedulers; keeping
them here, apart from what the commands do, lets the parser be built and tested without Spark.
Each subcommand records the function that runs it as ``args.func``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark import __version__
from rfm_spark.cli.campaigns import add_campaigns
from rfm_spark.cli.churn import add_churn
from rfm_spark.cli.clv import add_clv
from rfm_spark.cli.crosstab import add_crosstab
from rfm_spark.cli.machine import json_option
from rfm_spark.cli.maintenance import cmd_optimize, cmd_vacuum
from rfm_spark.cli.options import (
    EPILOG,
    command,
    common,
    table_option,
    time_travel_options,
)
from rfm_spark.cli.reads import cmd_export, cmd_history, cmd_report, cmd_transitions
from rfm_spark.cli.recommend import add_recommend
from rfm_spark.cli.register import add_register
from rfm_spark.cli.runs import cmd_backfill, cmd_generate, cmd_segment
from rfm_spark.cli.training import cmd_train


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``--version`` and the subcommands, one of which is required."""
    parser = argparse.ArgumentParser(
        prog="rfm-spark",
        description="RFM customer segmentation on Apache Spark with versioned Delta Lake history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rfm-spark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (
        _add_generate,
        _add_segment,
        _add_backfill,
        _add_history,
        _add_export,
        _add_transitions,
        _add_report,
        add_crosstab,
        add_campaigns,
        _add_train,
        add_clv,
        add_churn,
        add_recommend,
        _add_vacuum,
        _add_optimize,
        add_register,
    ):
        add(sub)
    return parser


def _add_generate(sub: Any) -> None:
    """``generate``: the demo data; every size and date has a config default."""
    gen = command(
        sub,
        "generate",
        help="write demo transactions, customers and products with planted personas",
        description=(
            "Generate realistic demo data with Spark: DIR/transactions, DIR/customers and "
            "DIR/products as Parquet. Deterministic for a seed; when DIR already holds the data "
            "of the same arguments, nothing is written (see --force)."
        ),
    )
    gen.add_argument(
        "--out", metavar="DIR", help="output folder (default: demo.data_dir of the config)"
    )
    gen.add_argument("--customers", type=int, help="number of customers (default 20000)")
    gen.add_argument("--days", type=int, help="days of history before --end-date (default 730)")
    gen.add_argument("--end-date", metavar="D", help="first day after the data, YYYY-MM-DD")
    gen.add_argument("--seed", type=int, help="random seed (default 42)")
    gen.add_argument(
        "--partitions", type=int, help="output files of the transactions (default: by size)"
    )
    gen.add_argument(
        "--force",
        action="store_true",
        help="write the data even when the same data is already there (by default nothing is "
        "written then, so incremental runs do not see the same rows again in new files)",
    )
    common(gen)
    gen.set_defaults(func=cmd_generate)


def _add_segment(sub: Any) -> None:
    """``segment``: one snapshot; the date is required because it names the partition."""
    seg = command(
        sub,
        "segment",
        help="score and segment every customer as of a snapshot date; commit to Delta",
        description=(
            "Compute RFM features as of --snapshot-date over the lookback window, score them, "
            "name segments with the scheme and replace that date's partition of the "
            "customer_segments Delta table in one commit."
        ),
    )
    seg.add_argument(
        "--snapshot-date", required=True, metavar="D", help="YYYY-MM-DD; uses orders before D 00:00"
    )
    mode = seg.add_mutually_exclusive_group()
    mode.add_argument(
        "--incremental",
        dest="mode",
        action="store_const",
        const="incremental",
        help="read only the input rows not read before into the customer_day_activity table "
        "and compute the snapshot from it (features.mode: incremental)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="recompute the snapshot from the whole window of input (features.mode: full)",
    )
    mode.add_argument(
        "--rebuild",
        dest="mode",
        action="store_const",
        const="rebuild",
        help="an incremental run that first forgets what was read and reads the whole input "
        "again into an emptied activity table (after input files were removed or rewritten, "
        "or the input or its settings changed)",
    )
    seg.add_argument(
        "--files-per-batch",
        type=int,
        metavar="N",
        help="with --incremental or --rebuild: read at most N new input files per micro-batch, "
        "each batch validated and committed on its own (default: a folder's new files in one "
        "batch, a Delta input's 1000 files per batch; a change data feed is read in whole "
        "commits). Bounds the disk of a first run over a long history of daily files "
        "(features.files_per_batch)",
    )
    _segment_options(seg)
    json_option(seg)
    common(seg)
    seg.set_defaults(func=cmd_segment)


def _add_backfill(sub: Any) -> None:
    """``backfill``: a span of snapshots from one read of the transactions."""
    bf = command(
        sub,
        "backfill",
        help="build many snapshots from one pass over the transactions",
        description=(
            "Build snapshots from --start to --end every --step-days days. The transactions are "
            "read once into daily aggregates; each snapshot is scored on its own and committed "
            "as it is done (or all in one commit with --single-commit)."
        ),
    )
    bf.add_argument("--start", required=True, metavar="D", help="first snapshot date")
    bf.add_argument("--end", required=True, metavar="D", help="last snapshot date (inclusive)")
    bf.add_argument("--step-days", type=int, default=1, metavar="N", help="days between snapshots")
    bf.add_argument(
        "--single-commit", action="store_true", help="commit all snapshots in one Delta commit"
    )
    _segment_options(bf)
    json_option(bf)
    common(bf)
    bf.set_defaults(func=cmd_backfill)


def _segment_options(p: argparse.ArgumentParser) -> None:
    """The input, scoring and output options ``segment`` and ``backfill`` share."""
    p.add_argument("--input", metavar="PATH", help="transactions path or table name")
    p.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
    p.add_argument(
        "--customers-input", metavar="PATH", help="customers table (for --partition-by columns)"
    )
    p.add_argument(
        "--lookback-days", type=int, metavar="N", help="window length in days (default 365)"
    )
    p.add_argument("--scoring", choices=["ntile", "quantile", "thresholds"], help="scoring method")
    p.add_argument("--bins", type=int, metavar="N", help="scores 1..N (default 5)")
    p.add_argument(
        "--scheme", metavar="NAME|FILE", help="segment scheme: rfm11, rf10 or a YAML file"
    )
    p.add_argument(
        "--attributes",
        metavar="NAME|FILE",
        help="attribute segment rules: profile or a YAML file (docs/attributes.md)",
    )
    p.add_argument(
        "--partition-by",
        metavar="COL",
        action="append",
        help="score within groups of this customer column (repeatable), e.g. country",
    )
    table_option(p, "output table name")
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the orchestrator's run id: a retry whose earlier attempt committed writes nothing",
    )


def _add_history(sub: Any) -> None:
    """``history``: the table's commits with their run metadata."""
    hist = command(
        sub,
        "history",
        help="list the table's versions with their run metadata",
        description="List the commits of customer_segments, newest first, with run metadata.",
    )
    table_option(hist)
    hist.add_argument("--limit", type=int, default=20, metavar="N", help="newest N versions")
    hist.add_argument("--json", action="store_true", help="full metadata as JSON lines")
    common(hist)
    hist.set_defaults(func=cmd_history)


def _add_report(sub: Any) -> None:
    """``report``: one self-contained HTML page about a snapshot."""
    rep = command(
        sub,
        "report",
        help="write an HTML report of a snapshot: charts, movements, outliers, data quality",
        description=(
            "Write one self-contained HTML file (charts embedded, no network needed to view it) "
            "about the snapshot of --snapshot-date: headline figures against the previous "
            "snapshot, segment sizes and revenue, the R x F grid, distributions, movements "
            "since --days earlier, cluster profiles, outliers and data quality."
        ),
    )
    rep.add_argument("--snapshot-date", required=True, metavar="D", help="snapshot to report on")
    rep.add_argument("--out", metavar="FILE", help="the HTML file (default report-D.html)")
    rep.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="movements since N days earlier (default: history.transition_days, 14)",
    )
    rep.add_argument(
        "--outliers", type=int, default=20, metavar="N", help="outliers listed by id (default 20)"
    )
    table_option(rep)
    common(rep)
    rep.set_defaults(func=cmd_report)


def _add_export(sub: Any) -> None:
    """``export``: one snapshot's customers to a file, optionally as of an older version."""
    exp = command(
        sub,
        "export",
        help="write a snapshot's customers (optionally one segment) to CSV or Parquet",
        description=(
            "Export the customers of one snapshot, e.g. a campaign target list. Reads the table "
            "as it is now, or as of --as-of-version / --as-of-timestamp (time travel)."
        ),
    )
    exp.add_argument("--snapshot-date", required=True, metavar="D", help="snapshot to export")
    exp.add_argument(
        "--segment", action="append", metavar="NAME", help="only this segment (repeatable)"
    )
    exp.add_argument("--output", required=True, metavar="FILE", help="FILE.csv or FILE.parquet")
    time_travel_options(exp)
    table_option(exp)
    common(exp)
    exp.set_defaults(func=cmd_export)


def _add_transitions(sub: Any) -> None:
    """``transitions``: the from/to matrix of two snapshots, or the movers."""
    tr = command(
        sub,
        "transitions",
        help="who moved between segments: the matrix, or the movers with --from/--to",
        description=(
            "Compare the snapshot --as-of with the one --days before it (or the latest one on or "
            "before that day, which is then named). Without --from/--to: the from/to matrix "
            "(customers and share of each from-segment). With them: one row per customer who "
            "moved. Customers new since the earlier snapshot come from '(new)'; customers absent "
            "from the later one go to '(gone)'."
        ),
    )
    tr.add_argument("--as-of", required=True, metavar="D", help="the later snapshot date")
    tr.add_argument(
        "--days", type=int, metavar="N", help="how far back (default: history.transition_days, 14)"
    )
    tr.add_argument("--from", dest="from_segment", metavar="SEG", help="movers out of this segment")
    tr.add_argument("--to", dest="to_segment", metavar="SEG", help="movers into this segment")
    tr.add_argument(
        "--by",
        choices=["segment", "cluster"],
        default="segment",
        help="compare segments or k-means clusters",
    )
    tr.add_argument(
        "--output", metavar="FILE", help="also write the result to FILE.csv or FILE.parquet"
    )
    tr.add_argument(
        "--grid", action="store_true", help="print the matrix as a from x to grid of counts"
    )
    tr.add_argument(
        "--materialize",
        action="store_true",
        help="keep the matrix in the segment_transitions table",
    )
    time_travel_options(tr)
    table_option(tr, "segments table")
    common(tr)
    tr.set_defaults(func=cmd_transitions)


def _add_train(sub: Any) -> None:
    """``train``: the cluster model; ``--k`` and ``--k-min`` exclude each other."""
    trn = command(
        sub,
        "train",
        help="train predictive segments (k-means) on a snapshot's features",
        description=(
            "Fit log-transform + VectorAssembler + StandardScaler + KMeans (or bisecting k-means, "
            "Gaussian mixture) on the features of --snapshot-date in customer_segments. With a k "
            "range every k is fitted on the same sample and the best silhouette wins. The model "
            "is saved under WAREHOUSE/models/rfm_clusters and used by every later segment run; a "
            "retrain keeps the ids of matching clusters."
        ),
    )
    trn.add_argument("--snapshot-date", required=True, metavar="D", help="snapshot to train on")
    kk = trn.add_mutually_exclusive_group()
    kk.add_argument("--k", type=int, help="number of clusters")
    kk.add_argument("--k-min", type=int, metavar="A", help="smallest k to try (default 3)")
    trn.add_argument("--k-max", type=int, metavar="B", help="largest k to try (default 8)")
    trn.add_argument("--algorithm", choices=["kmeans", "bisecting_kmeans", "gaussian_mixture"])
    trn.add_argument(
        "--sample-fraction", type=float, metavar="F", help="share of customers to train on"
    )
    trn.add_argument("--seed", type=int, help="random seed (default 42)")
    table_option(trn, "segments table")
    json_option(trn)
    common(trn)
    trn.set_defaults(func=cmd_train)


def _add_vacuum(sub: Any) -> None:
    """``vacuum``: a dry run unless ``--apply``."""
    vac = command(
        sub,
        "vacuum",
        help="delete old unreferenced files, never inside the transition window",
        description=(
            "VACUUM the table. Refuses a retention shorter than history.transition_days + "
            "history.margin_days. Lists files only unless --apply is given."
        ),
    )
    vac.add_argument("--retain-hours", type=int, metavar="H", help="default: the configured window")
    vac.add_argument("--apply", action="store_true", help="delete (default: dry run)")
    table_option(vac)
    common(vac)
    vac.set_defaults(func=cmd_vacuum)


def _add_optimize(sub: Any) -> None:
    """``optimize``: compaction, Z-ordered unless ``--no-zorder``."""
    opt = command(
        sub,
        "optimize",
        help="compact a table's small files, Z-ordered for the common queries",
        description=(
            "OPTIMIZE the table: rewrite each partition's small files into fewer large ones, "
            "Z-ordered by --zorder-by (default: segment, customer_id, which serve 'customers of "
            "segment S' and 'this customer's history' queries). Old files stay for time travel "
            "until a vacuum."
        ),
    )
    opt.add_argument(
        "--zorder-by",
        metavar="COL",
        action="append",
        help="Z-order column (repeatable); default segment and customer_id",
    )
    opt.add_argument("--no-zorder", action="store_true", help="compact only")
    table_option(opt)
    common(opt)
    opt.set_defaults(func=cmd_optimize)
