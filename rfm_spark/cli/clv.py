"""``rfm-spark clv fit`` and ``clv score``: BG/NBD and Gamma-Gamma customer lifetime value."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rfm_spark.cli.machine import emit, json_option
from rfm_spark.cli.options import command, common
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date
from rfm_spark.errors import ModelError


def add_clv(sub: Any) -> None:
    """``clv fit`` and ``clv score``."""
    parser = command(
        sub,
        "clv",
        help="customer lifetime value: fit BG/NBD and Gamma-Gamma, score customers",
        description="Probabilistic CLV from the transactions (see docs/clv.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    fit = actions.add_parser(
        "fit",
        help="fit the purchase (BG/NBD) and spend (Gamma-Gamma) models",
        description=(
            "Summarise each customer's purchases before --snapshot-date (repeat purchase days, "
            "recency and age from the first purchase, mean repeat spend), fit BG/NBD on every "
            "customer and Gamma-Gamma on the repeat customers by maximum likelihood (summed by "
            "Spark, optimised on the driver), save the fit under the warehouse "
            "(models/clv/vN/fit.json) and write it to --output."
        ),
    )
    fit.add_argument(
        "--snapshot-date", required=True, metavar="D", help="calibration ends before D"
    )
    fit.add_argument("--input", metavar="PATH", help="the transactions (input.path)")
    fit.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
    fit.add_argument(
        "--time-unit", choices=["day", "week"], default="day", help="of recency and age (day)"
    )
    fit.add_argument("--output", metavar="FILE.json", help="also write the fit here")
    json_option(fit)
    common(fit)
    fit.set_defaults(func=cmd_clv_fit)
    score = actions.add_parser(
        "score",
        help="expected purchases, probability alive and CLV per customer into customer_clv",
        description=(
            "Score every customer with a purchase before --snapshot-date with the current fit "
            "(or --fit FILE): p_alive, expected_purchases and clv (expected purchases times "
            "expected spend) over --horizon-days, into the customer_clv table (the snapshot's "
            "partition is replaced in one commit)."
        ),
    )
    score.add_argument("--snapshot-date", required=True, metavar="D", help="score as of D")
    score.add_argument("--input", metavar="PATH", help="the transactions (input.path)")
    score.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
    score.add_argument("--fit", metavar="FILE.json", help="a fit file (default: the current fit)")
    score.add_argument(
        "--horizon-days", type=int, default=90, metavar="N", help="prediction horizon (90)"
    )
    json_option(score)
    common(score)
    score.set_defaults(func=cmd_clv_score)


def _config(args: argparse.Namespace) -> Any:
    return config_from(args, {"input.path": args.input, "input.format": args.input_format})


def cmd_clv_fit(args: argparse.Namespace) -> int:
    """Fit, save and print the parameters; exit code 0."""
    from rfm_spark.io.clv_fits import save_fit
    from rfm_spark.io.exports import write_text
    from rfm_spark.pipeline.clv import fit_clv
    from rfm_spark.progress import Progress

    day = parse_date(args.snapshot_date, "--snapshot-date")
    config = _config(args)
    progress = Progress("clv", quiet=args.quiet)
    spark = spark_session(config, args)
    fitted = fit_clv(spark, config, day, unit=args.time_unit, progress=progress)
    record = fitted.record()
    version = save_fit(spark, config.warehouse, record)
    text = json.dumps(record, indent=2) + "\n"
    if args.output:
        write_text(args.output, text, spark)
    if args.json:
        emit("clv fit", record, fit_version=version, output=args.output)
        return 0
    print(text, end="")
    saved = f"CLV fit version {version} in {config.table_path('model_versions')}"
    print(f"saved {saved}" + (f" and wrote {args.output}" if args.output else ""))
    return 0


def _fit(spark: Any, warehouse: str, path: str | None) -> dict[str, Any]:
    """The fit in the file ``path`` ('clv fit --output'), or the warehouse's current one."""
    from rfm_spark.io.clv_fits import check_fit, load_fit
    from rfm_spark.io.exports import read_text

    if path is None:
        return load_fit(spark, warehouse)
    try:
        record = json.loads(read_text(path, spark))
    except ValueError as exc:
        raise ModelError(f"{path} is not a CLV fit (not JSON: {exc})") from None
    return check_fit(record, path)


def cmd_clv_score(args: argparse.Namespace) -> int:
    """Score the snapshot's customers and print the totals; exit code 0."""
    from rfm_spark.errors import UsageError
    from rfm_spark.pipeline import new_run_id
    from rfm_spark.pipeline.clv import score_clv
    from rfm_spark.progress import Progress

    day = parse_date(args.snapshot_date, "--snapshot-date")
    if args.horizon_days < 1:
        raise UsageError("--horizon-days must be at least 1")
    config = _config(args)
    progress = Progress("clv", quiet=args.quiet)
    spark = spark_session(config, args)
    fit = _fit(spark, config.warehouse, args.fit)
    result = score_clv(
        spark, config, fit, day, horizon_days=args.horizon_days, run_id=new_run_id(),
        progress=progress,
    )  # fmt: skip
    if args.json:
        emit("clv score", result, snapshot_date=day, horizon_days=args.horizon_days)
        return 0
    print(
        f"{result.customers:,} customers as of {day}: {result.expected_purchases:,.1f} purchases "
        f"and {result.clv:,.2f} expected in the next {args.horizon_days} days"
    )
    if result.without_clv:
        print(
            f"{result.without_clv:,} customers without a CLV: no repeat purchase, and the spend "
            "model's population mean is infinite (Gamma-Gamma q <= 1); clv is null for them"
        )
    print(f"{result.table} version {result.version}")
    return 0
