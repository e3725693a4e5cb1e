"""The ``rfm-spark`` command line (design.md section 9).

Exit codes: 0 success, 2 usage or configuration error, 1 any other failure; one line on stderr
(the stack trace only with ``--verbose``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from rfm_spark import __version__
from rfm_spark.config import Config, load_config, parse_date
from rfm_spark.errors import ConfigError, RfmError, UsageError

EPILOG = """\
Every subcommand reads --config FILE (default: built-in defaults) and lets flags override it.
Tables live under the warehouse: WAREHOUSE/<table_name>. Exit codes: 0 ok, 2 usage or config
error, 1 other failure. Add --verbose for Spark's own messages and stack traces.
"""


def _spark_conf(value: str) -> tuple[str, str]:
    if "=" not in value:
        raise argparse.ArgumentTypeError(f"--spark-conf takes key=value, got {value!r}")
    k, v = value.split("=", 1)
    return k.strip(), v.strip()


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", help="YAML config file (see conf/local.yaml)")
    g.add_argument("--warehouse", metavar="DIR", help="folder (or URI) holding the tables")
    g.add_argument("--master", help="Spark master when not run by spark-submit, e.g. local[*]")
    g.add_argument(
        "--spark-conf",
        metavar="KEY=VALUE",
        action="append",
        type=_spark_conf,
        default=[],
        help="extra Spark setting; repeatable",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--verbose", action="store_true", help="Spark logs and full stack traces on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfm-spark",
        description="RFM customer segmentation on Apache Spark with versioned Delta Lake history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rfm-spark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    gen = sub.add_parser(
        "generate",
        help="write demo transactions, customers and products with planted personas",
        description=(
            "Generate realistic demo data with Spark: DIR/transactions, DIR/customers and "
            "DIR/products as Parquet. Deterministic for a seed."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("--out", metavar="DIR", help="output folder (default: demo.data_dir of the config)")
    gen.add_argument("--customers", type=int, help="number of customers (default 20000)")
    gen.add_argument("--days", type=int, help="days of history before --end-date (default 730)")
    gen.add_argument("--end-date", metavar="D", help="first day after the data, YYYY-MM-DD")
    gen.add_argument("--seed", type=int, help="random seed (default 42)")
    gen.add_argument("--partitions", type=int, help="output files of the transactions (default: by size)")
    _common(gen)
    gen.set_defaults(func=cmd_generate)

    seg = sub.add_parser(
        "segment",
        help="score and segment every customer as of a snapshot date; commit to Delta",
        description=(
            "Compute RFM features as of --snapshot-date over the lookback window, score them, "
            "name segments with the scheme and replace that date's partition of the "
            "customer_segments Delta table in one commit."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seg.add_argument("--snapshot-date", required=True, metavar="D", help="YYYY-MM-DD; uses orders before D 00:00")
    seg.add_argument("--input", metavar="PATH", help="transactions path or table name")
    seg.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
    seg.add_argument("--customers-input", metavar="PATH", help="customers table (for --partition-by columns)")
    seg.add_argument("--lookback-days", type=int, metavar="N", help="window length in days (default 365)")
    seg.add_argument("--scoring", choices=["ntile", "quantile", "thresholds"], help="scoring method")
    seg.add_argument("--bins", type=int, metavar="N", help="scores 1..N (default 5)")
    seg.add_argument("--scheme", metavar="NAME|FILE", help="segment scheme: rfm11, rf10 or a YAML file")
    seg.add_argument(
        "--partition-by",
        metavar="COL",
        action="append",
        help="score within groups of this customer column (repeatable), e.g. country",
    )
    seg.add_argument("--backend", choices=["auto", "spark", "delta-rs"], help="Delta table backend")
    seg.add_argument("--table", metavar="NAME", help="output table name (default customer_segments)")
    _common(seg)
    seg.set_defaults(func=cmd_segment)
    return parser


def _config(args: argparse.Namespace, overrides: dict[str, Any]) -> Config:
    config = load_config(args.config)
    spark_conf = dict(config.spark.conf)
    spark_conf.update(dict(args.spark_conf))
    common = {
        "warehouse": args.warehouse,
        "spark.master": args.master,
        "spark.conf": spark_conf if args.spark_conf else None,
    }
    return config.with_overrides({**common, **overrides})


def _spark(config: Config, args: argparse.Namespace) -> Any:
    from rfm_spark.session import build_spark

    spark = build_spark(config.spark)
    if not args.verbose:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def cmd_generate(args: argparse.Namespace) -> int:
    from rfm_spark.datagen import generate
    from rfm_spark.progress import Progress

    config = _config(
        args,
        {
            "demo.data_dir": args.out,
            "demo.customers": args.customers,
            "demo.days": args.days,
            "demo.end_date": parse_date(args.end_date, "--end-date") if args.end_date else None,
            "demo.seed": args.seed,
        },
    )
    demo = config.demo
    progress = Progress("generate", quiet=args.quiet)
    spark = _spark(config, args)
    with progress.step(f"generating {demo.customers:,} customers over {demo.days} days into {demo.data_dir}"):
        summary = generate(
            spark,
            demo.data_dir,
            customers=demo.customers,
            days=demo.days,
            end_date=demo.end_date,
            seed=demo.seed,
            partitions=args.partitions,
        )
    print(
        f"wrote {summary.transactions:,} transactions, {summary.customers:,} customers and "
        f"{summary.products:,} products ({summary.start_date} to {summary.end_date}, exclusive) "
        f"under {summary.out_dir}"
    )
    return 0


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain text table; ``align`` is one of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align, strict=True))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def cmd_segment(args: argparse.Namespace) -> int:
    from rfm_spark.pipeline import run_segment
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    config = _config(
        args,
        {
            "input.path": args.input,
            "input.format": args.input_format,
            "input.customers_path": args.customers_input,
            "features.lookback_days": args.lookback_days,
            "scoring.method": args.scoring,
            "scoring.bins": args.bins,
            "scoring.partition_by": args.partition_by,
            "segments.scheme": args.scheme,
            "output.backend": args.backend,
            "output.table": args.table,
        },
    )
    progress = Progress("segment", quiet=args.quiet)
    spark = _spark(config, args)
    result = run_segment(spark, config, snapshot, progress=progress)
    rows = [
        (s.segment, f"{s.customers:,}", f"{s.share:.1%}", f"{s.revenue:,.2f}", f"{s.revenue_share:.1%}")
        for s in result.summary
    ]
    rows.append(("total", f"{result.customers:,}", "100.0%", f"{sum(s.revenue for s in result.summary):,.2f}", ""))
    print(f"\nSegments as of {result.snapshot_date} (scheme {result.scheme}, scoring {result.scoring.method}):\n")
    print(format_table(["segment", "customers", "share", "revenue", "revenue share"], rows, "lrrrr"))
    collapsed = {a: v for a, v in result.scoring.collapsed.items() if v}
    if collapsed:
        print(f"\nnote: ties left some scores empty (axis -> group -> scores): {collapsed}")
    r = result.reconciliation
    print(
        f"\ninput rows {r.input_rows:,} = used {r.used:,} + outside the window {r.outside_window:,}"
        f" + rejected {sum(r.rejected.values()):,}" + (f" {r.rejected}" if r.rejected else "")
    )
    print(f"table {result.table_path} version {result.version} ({result.backend} backend), run {result.run_id}")
    return 0


def _java_error_line(exc: BaseException) -> str | None:
    text = str(exc).strip()
    if not text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "JVM stacktrace", "Traceback")):
            return line
    return None


def main(argv: Sequence[str] | None = None, *, run: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Entry point of the ``rfm-spark`` console script and of the spark-submit jobs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return (run or args.func)(args)
    except RfmError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"rfm-spark {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"rfm-spark {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # Spark/Java failures: one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        line = _java_error_line(exc) or type(exc).__name__
        hint = "" if args.verbose else " (run with --verbose for details)"
        print(f"rfm-spark {args.command}: failed: {line}{hint}", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()


__all__ = ["ConfigError", "UsageError", "build_parser", "main"]
