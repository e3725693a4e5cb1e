"""``rfm-spark churn train`` and ``churn score``: who is likely to stop buying."""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli.machine import emit, json_option
from rfm_spark.cli.options import command, common
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def add_churn(sub: Any) -> None:
    """``churn train`` and ``churn score``."""
    parser = command(
        sub,
        "churn",
        help="churn propensity: train MLlib models, score customers",
        description="Churn propensity from the transactions (see docs/churn.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    train = actions.add_parser(
        "train",
        help="train on the snapshot --horizon-days before --snapshot-date, whose outcome is known",
        description=(
            "Label the customers of the snapshot --horizon-days before --snapshot-date by whether "
            "they bought in the --horizon-days after it, fit logistic regression and "
            "gradient-boosted trees on 60% of them, keep the better by AUC on 20%, report its "
            "AUC on the last 20% and the feature importances, and save it under the warehouse."
        ),
    )
    score = actions.add_parser(
        "score",
        help="churn probability and risk band per customer into customer_churn",
        description=(
            "Score the customers with a purchase in the lookback before --snapshot-date with "
            "the current churn model into the customer_churn table (the snapshot's partition "
            "is replaced in one commit)."
        ),
    )
    for p in (train, score):
        p.add_argument("--snapshot-date", required=True, metavar="D", help="the current date")
        p.add_argument("--input", metavar="PATH", help="the transactions (input.path)")
        p.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
        p.add_argument("--lookback-days", type=int, metavar="N", help="feature window (365)")
    train.add_argument(
        "--horizon-days", type=int, default=90, metavar="H", help="churned: no purchase in H days"
    )
    json_option(train)
    common(train)
    json_option(score)
    common(score)
    train.set_defaults(func=cmd_churn_train)
    score.set_defaults(func=cmd_churn_score)


def _config(args: argparse.Namespace) -> Any:
    return config_from(
        args,
        {"input.path": args.input, "input.format": args.input_format,
         "features.lookback_days": args.lookback_days},
    )  # fmt: skip


def cmd_churn_train(args: argparse.Namespace) -> int:
    """Train, save and print the AUCs and importances; exit code 0."""
    from rfm_spark.cli.render import format_table
    from rfm_spark.errors import UsageError
    from rfm_spark.pipeline.churn import train_churn
    from rfm_spark.progress import Progress

    day = parse_date(args.snapshot_date, "--snapshot-date")
    if args.horizon_days < 1:
        raise UsageError("--horizon-days must be at least 1")
    config = _config(args)
    progress = Progress("churn", quiet=args.quiet)
    spark = spark_session(config, args)
    t = train_churn(spark, config, day, horizon_days=args.horizon_days, progress=progress)
    if args.json:
        emit("churn train", t)
        return 0
    parts = ", ".join(f"{n:,} {name}" for name, n in t.customers.items())
    print(f"trained on the snapshot {t.trained_on} ({parts} customers; "
          f"{t.churn_rate:.1%} bought nothing in the {t.horizon_days} days after)")  # fmt: skip
    rows = [[k, f"{v:.3f}", "chosen" if k == t.chosen else ""] for k, v in t.validation_auc.items()]
    print(format_table(["model", "validation AUC", ""], rows, "lrl"))
    print(f"\ntest AUC of {t.chosen}: {t.test_auc:.3f}\n")
    ranked = sorted(t.importances.items(), key=lambda kv: -kv[1])
    print(format_table(["feature", "importance"], [[f, f"{v:.3f}"] for f, v in ranked], "lr"))
    print(f"\nsaved {t.path} (version {t.version})")
    return 0


def cmd_churn_score(args: argparse.Namespace) -> int:
    """Score the snapshot's customers and print them per risk band; exit code 0."""
    from rfm_spark.pipeline import new_run_id
    from rfm_spark.pipeline.churn import score_churn
    from rfm_spark.progress import Progress

    day = parse_date(args.snapshot_date, "--snapshot-date")
    config = _config(args)
    progress = Progress("churn", quiet=args.quiet)
    spark = spark_session(config, args)
    path, version, bands = score_churn(spark, config, day, run_id=new_run_id(), progress=progress)
    if args.json:
        emit("churn score", None, table=path, version=version, snapshot_date=day, bands=bands)
        return 0
    shown = ", ".join(f"{bands.get(b, 0):,} {b}" for b in ("high", "medium", "low"))
    print(f"churn risk as of {day}: {shown}")
    print(f"{path} version {version}")
    return 0
