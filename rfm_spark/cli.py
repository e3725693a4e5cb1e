"""The ``rfm-spark`` command line (design.md section 9).

Exit codes: 0 success, 2 usage or configuration error, 1 any other failure; one line on stderr
(the stack trace only with ``--verbose``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from rfm_spark import __version__
from rfm_spark.config import Config, load_config, parse_date
from rfm_spark.errors import RfmError, UsageError, java_error_line
from rfm_spark.io.store import TableStore

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
    g.add_argument(
        "--verbose", action="store_true", help="Spark logs and full stack traces on errors"
    )


def _command(sub: Any, name: str, *, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with the shared epilog (config, warehouse, exit codes)."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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

    gen = _command(
        sub,
        "generate",
        help="write demo transactions, customers and products with planted personas",
        description=(
            "Generate realistic demo data with Spark: DIR/transactions, DIR/customers and "
            "DIR/products as Parquet. Deterministic for a seed."
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
    _common(gen)
    gen.set_defaults(func=cmd_generate)

    seg = _command(
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
    _segment_options(seg)
    _common(seg)
    seg.set_defaults(func=cmd_segment)

    bf = _command(
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
    _common(bf)
    bf.set_defaults(func=cmd_backfill)

    hist = _command(
        sub,
        "history",
        help="list the table's versions with their run metadata",
        description="List the commits of customer_segments, newest first, with run metadata.",
    )
    hist.add_argument("--table", metavar="NAME", help="table name (default customer_segments)")
    hist.add_argument("--limit", type=int, default=20, metavar="N", help="newest N versions")
    hist.add_argument("--json", action="store_true", help="full metadata as JSON lines")
    _common(hist)
    hist.set_defaults(func=cmd_history)

    exp = _command(
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
    _time_travel_options(exp)
    exp.add_argument("--table", metavar="NAME", help="table name (default customer_segments)")
    _common(exp)
    exp.set_defaults(func=cmd_export)

    tr = _command(
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
    _time_travel_options(tr)
    tr.add_argument("--table", metavar="NAME", help="segments table (default customer_segments)")
    _common(tr)
    tr.set_defaults(func=cmd_transitions)

    trn = _command(
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
    trn.add_argument("--table", metavar="NAME", help="segments table (default customer_segments)")
    _common(trn)
    trn.set_defaults(func=cmd_train)

    vac = _command(
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
    vac.add_argument("--table", metavar="NAME", help="table name (default customer_segments)")
    _common(vac)
    vac.set_defaults(func=cmd_vacuum)

    opt = _command(
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
    opt.add_argument("--table", metavar="NAME", help="table name (default customer_segments)")
    _common(opt)
    opt.set_defaults(func=cmd_optimize)
    return parser


def _segment_options(p: argparse.ArgumentParser) -> None:
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
        "--partition-by",
        metavar="COL",
        action="append",
        help="score within groups of this customer column (repeatable), e.g. country",
    )
    p.add_argument("--backend", choices=["auto", "spark", "delta-rs"], help="Delta table backend")
    p.add_argument("--table", metavar="NAME", help="output table name (default customer_segments)")
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the orchestrator's run id: a retry whose earlier attempt committed writes nothing",
    )


def _segment_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
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
        "output.idempotency_key": args.idempotency_key,
    }


def _time_travel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--as-of-version", type=int, metavar="V", help="read the table at version V")
    g.add_argument(
        "--as-of-timestamp",
        metavar="TS",
        help="read the table as it was at TS (ISO 8601, UTC unless it has an offset)",
    )


def _time_travel(args: argparse.Namespace) -> dict[str, Any]:
    import datetime as dt

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


def _uses_s3a(config: Config) -> bool:
    """Whether the run reads or writes ``s3a://`` (then the session loads hadoop-aws)."""
    paths = (config.warehouse, config.input.path, config.input.customers_path)
    return any(str(p or "").startswith("s3a://") for p in paths)


def _spark(config: Config, args: argparse.Namespace) -> Any:
    from rfm_spark.session import build_spark

    spark = build_spark(config.spark, quiet=not args.verbose, s3=_uses_s3a(config))
    if not args.verbose:
        spark.sparkContext.setLogLevel("FATAL")  # the CLI reports failures itself
    if not getattr(args, "quiet", False):
        sc = spark.sparkContext
        print(f"[{args.command}] Spark {spark.version}, master {sc.master}", file=sys.stderr)
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
    with progress.step(
        f"generating {demo.customers:,} customers over {demo.days} days into {demo.data_dir}"
    ):
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


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A plain text table; ``align`` is one of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align, strict=True)
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def cmd_segment(args: argparse.Namespace) -> int:
    from rfm_spark.pipeline import run_segment
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    config = _config(args, _segment_overrides(args))
    progress = Progress("segment", quiet=args.quiet)
    spark = _spark(config, args)
    result = run_segment(spark, config, snapshot, progress=progress)
    if result.replayed:
        print(
            f"already committed by an earlier attempt (run {result.run_id}) with idempotency "
            f"key {config.output.idempotency_key!r}: nothing written"
        )
    rows = [
        (
            s.segment,
            f"{s.customers:,}",
            f"{s.share:.1%}",
            f"{s.revenue:,.2f}",
            f"{s.revenue_share:.1%}",
        )
        for s in result.summary
    ]
    rows.append(
        (
            "total",
            f"{result.customers:,}",
            "100.0%",
            f"{sum(s.revenue for s in result.summary):,.2f}",
            "",
        )
    )
    print(
        f"\nSegments as of {result.snapshot_date} (scheme {result.scheme}, scoring {result.scoring.method}):\n"
    )
    print(
        format_table(["segment", "customers", "share", "revenue", "revenue share"], rows, "lrrrr")
    )
    collapsed = {a: v for a, v in result.scoring.collapsed.items() if v}
    if collapsed:
        print(f"\nnote: ties left some scores empty (axis -> group -> scores): {collapsed}")
    print("\n" + result.reconciliation.line())
    _print_quarantine(result.reconciliation, result.quarantine_path, result.quarantine_version)
    print(
        f"table {result.table_path} version {result.version} ({result.backend} backend), run {result.run_id}"
    )
    return 0


def _print_quarantine(recon: Any, path: str | None, version: int | None) -> None:
    if recon.quarantined_rows and path is not None:
        print(f"quarantined rows: {path} version {version} (reason and original row of each)")


def cmd_backfill(args: argparse.Namespace) -> int:
    from rfm_spark.pipeline import run_backfill, snapshot_dates
    from rfm_spark.progress import Progress

    dates = snapshot_dates(
        parse_date(args.start, "--start"), parse_date(args.end, "--end"), args.step_days
    )
    config = _config(args, _segment_overrides(args))
    progress = Progress("backfill", quiet=args.quiet)
    spark = _spark(config, args)
    result = run_backfill(spark, config, dates, single_commit=args.single_commit, progress=progress)
    rows = [
        (
            str(s.snapshot_date),
            f"{s.customers:,}",
            f"{s.reconciliation.used:,}",
            str(s.version),
        )
        for s in result.snapshots
    ]
    print(f"\nBackfill {dates[0]} .. {dates[-1]} ({len(dates)} snapshots, run {result.run_id}):\n")
    print(format_table(["snapshot", "customers", "rows used", "version"], rows, "lrrr"))
    if result.reconciliation is not None:
        print("\nall snapshots: " + result.reconciliation.line())
        _print_quarantine(result.reconciliation, result.quarantine_path, result.quarantine_version)
    print(f"\ntable {result.table_path}, versions {', '.join(map(str, result.versions))}")
    return 0


def _store(args: argparse.Namespace, config: Config) -> TableStore:
    from rfm_spark.io.store import open_store

    return open_store(_spark(config, args), config.output.backend)


def cmd_history(args: argparse.Namespace) -> int:
    import json

    from rfm_spark.history import HISTORY_COLUMNS, history_rows, run_metadata

    config = _config(args, {"output.table": args.table})
    commits = _store(args, config).history(config.table_path())[: max(1, args.limit)]
    if args.json:
        for c in commits:
            record = {
                "version": c["version"],
                "timestamp": c["timestamp"].isoformat(),
                "operation": c["operation"],
                "metadata": run_metadata(c),
            }
            print(json.dumps(record, sort_keys=True))
        return 0
    rows = [[str(r[c]) for c in HISTORY_COLUMNS] for r in history_rows(commits)]
    print(format_table(list(HISTORY_COLUMNS), rows, "rlllllllrr"[: len(HISTORY_COLUMNS)]))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from rfm_spark.transitions import write_result

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    travel = _time_travel(args)
    config = _config(args, {"output.table": args.table})
    store = _store(args, config)
    df = store.read(config.table_path(), **travel).filter(F.col("snapshot_date") == F.lit(snapshot))
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
    from rfm_spark import transitions as tr
    from rfm_spark.pipeline import new_run_id

    as_of = parse_date(args.as_of, "--as-of")
    travel = _time_travel(args)
    config = _config(args, {"output.table": args.table})
    days = args.days if args.days is not None else config.history.transition_days
    store = _store(args, config)
    pair, pairs = tr.load_pairs(
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
        table = tr.crosstab_table(rows) if args.grid else tr.matrix_table(rows)
        print(format_table(*table))
        result = matrix
    else:
        tr.check_labels(rows, from_segment=args.from_segment, to_segment=args.to_segment)
        result = tr.movers(pairs, from_segment=args.from_segment, to_segment=args.to_segment)
        n = result.count()
        what = f"from {args.from_segment or 'any'} to {args.to_segment or 'any'}"
        print(f"{n:,} customers moved {what} ({title})")
        if not args.output:
            for r in result.limit(20).collect():
                print(f"  {r['customer_id']}  {r['from_segment']} -> {r['to_segment']}")
            if n > 20:
                print(f"  ... and {n - 20:,} more (use --output FILE for all)")
    if args.output:
        tr.write_result(result, args.output)
        print(f"wrote {args.output}")
    if args.materialize:
        version = tr.materialize(store, config.warehouse, matrix, pair, new_run_id(), by=args.by)
        print(f"segment_transitions version {version}")
    pairs.unpersist()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rfm_spark.clustering import format_scores
    from rfm_spark.pipeline import run_train
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    config = _config(
        args,
        {
            "output.table": args.table,
            "clustering.k": args.k,
            "clustering.k_min": args.k_min,
            "clustering.k_max": args.k_max,
            "clustering.algorithm": args.algorithm,
            "clustering.sample_fraction": args.sample_fraction,
            "clustering.seed": args.seed,
        },
    )
    spark = _spark(config, args)
    run = run_train(spark, config, snapshot, progress=Progress("train", quiet=args.quiet))
    result, model = run.result, run.model
    print(f"\n{format_scores(result.scores, model.k)}\n")
    print(result.reason)
    if result.matched or result.appeared or result.vanished:
        print(
            f"ids kept from the previous model: {sorted(result.matched) or 'none'}; "
            f"new: {result.appeared or 'none'}; vanished: {result.vanished or 'none'}"
        )
    rows = [
        (
            str(p["cluster_id"]),
            str(p["cluster_name"]),
            f"{p['customers']:,}",
            f"{(p['revenue_share'] or 0):.1%}",
            f"{(p['mean_recency_days'] or 0):.0f}",
            f"{(p['mean_frequency'] or 0):.1f}",
            f"{(p['mean_monetary'] or 0):,.2f}",
        )
        for p in run.profiles
    ]
    headers = ["id", "cluster", "customers", "revenue", "recency", "frequency", "monetary"]
    print()
    print(format_table(headers, rows, "llrrrrr"))
    print(
        f"\nmodel v{model.version} ({model.algorithm}, k={model.k}, silhouette "
        f"{model.silhouette:.3f}) saved at {model.path}; cluster_profiles version "
        f"{run.profiles_version}"
    )
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from rfm_spark.history import vacuum

    config = _config(args, {"output.table": args.table})
    result = vacuum(
        _store(args, config),
        config.table_path(),
        config.history,
        retain_hours=args.retain_hours,
        dry_run=not args.apply,
    )
    verb = "would delete" if result.dry_run else "deleted"
    for f in result.files:
        print(f)
    print(
        f"{verb} {len(result.files)} file(s) older than {result.retain_hours} h"
        + (" (dry run: add --apply to delete)" if result.dry_run else "")
    )
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    config = _config(args, {"output.table": args.table})
    zorder = [] if args.no_zorder else (args.zorder_by or ["segment", "customer_id"])
    store = _store(args, config)
    path = config.table_path()
    metrics = store.optimize(path, zorder_by=zorder)
    how = f"Z-ordered by {', '.join(zorder)}" if zorder else "compacted"
    print(
        f"{path} {how}: {metrics['files_removed']} file(s) rewritten into "
        f"{metrics['files_added']}; version {store.version(path)}"
    )
    return 0


def _setup_logging(args: argparse.Namespace) -> None:
    """The package's warnings (e.g. leftovers of a killed write removed) on stderr in the CLI's
    own format; INFO too with --verbose. Spark's JVM logging is set in session.py."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[{args.command}] %(message)s"))
    root = logging.getLogger("rfm_spark")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    root.propagate = False


def main(
    argv: Sequence[str] | None = None, *, run: Callable[[argparse.Namespace], int] | None = None
) -> int:
    """Entry point of the ``rfm-spark`` console script and of the spark-submit jobs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
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
        line = java_error_line(exc) or type(exc).__name__
        hint = "" if args.verbose else " (run with --verbose for details)"
        print(f"rfm-spark {args.command}: failed: {line}{hint}", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
