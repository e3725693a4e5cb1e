"""``rfm-spark recommend``: ALS recommendations, their precision, and recommendation segments."""

from __future__ import annotations

import argparse
from typing import Any

from rfm_spark.cli.machine import emit, json_option
from rfm_spark.cli.options import command, common
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def add_recommend(sub: Any) -> None:
    """``recommend --snapshot-date D [--top N] [--products-input PATH]``."""
    rec = command(
        sub,
        "recommend",
        help="top products per customer (ALS), precision@10 against the most popular products",
        description=(
            "Fit MLlib ALS on implicit feedback (how often each customer bought each product in "
            "the lookback before --snapshot-date). First as a test: fitted without each "
            "customer's last purchase day, its top 10 are scored against that day's products "
            "(precision@10) beside the 10 most popular products. Then on every purchase: each "
            "customer's --top products, with the category most of them are in (with "
            "--products-input), go to the customer_recommendations table, and the products "
            "recommended most in each segment of the snapshot are printed (docs/recommend.md)."
        ),
    )
    rec.add_argument("--snapshot-date", required=True, metavar="D", help="purchases before D")
    rec.add_argument("--input", metavar="PATH", help="the transactions (input.path)")
    rec.add_argument("--input-format", choices=["parquet", "csv", "delta", "table"])
    rec.add_argument(
        "--products-input", metavar="PATH", help="products with product_id and category"
    )
    rec.add_argument("--top", type=int, default=10, metavar="N", help="per customer (10)")
    rec.add_argument("--rank", type=int, default=32, metavar="R", help="ALS factors (32)")
    rec.add_argument(
        "--product-column", default="product_id", metavar="COL", help="of the transactions"
    )
    rec.add_argument("--lookback-days", type=int, metavar="N", help="purchases used (365)")
    json_option(rec)
    common(rec)
    rec.set_defaults(func=cmd_recommend)


def cmd_recommend(args: argparse.Namespace) -> int:
    """Evaluate, write the recommendations, print the comparison and segments; exit code 0."""
    from rfm_spark.cli.render import format_table
    from rfm_spark.errors import UsageError
    from rfm_spark.pipeline import new_run_id
    from rfm_spark.pipeline.recommend import K, run_recommend
    from rfm_spark.progress import Progress

    day = parse_date(args.snapshot_date, "--snapshot-date")
    if args.top < 1 or args.rank < 1:
        raise UsageError("--top and --rank must be at least 1")
    config = config_from(
        args,
        {"input.path": args.input, "input.format": args.input_format,
         "input.products_path": args.products_input,
         "features.lookback_days": args.lookback_days},
    )  # fmt: skip
    progress = Progress("recommend", quiet=args.quiet)
    spark = spark_session(config, args)
    r = run_recommend(
        spark, config, day, top=args.top, rank=args.rank, product_column=args.product_column,
        run_id=new_run_id(), progress=progress,
    )  # fmt: skip
    if args.json:
        emit("recommend", r, snapshot_date=day)
        return 0
    print(f"precision@{K} on the last purchase day of {r.evaluated:,} customers:")
    rows = [["ALS", f"{r.precision:.4f}"], [f"{K} most popular products", f"{r.baseline:.4f}"]]
    print(format_table(["recommender", f"precision@{K}"], rows, "lr"))
    if r.per_segment:
        print("\nproducts recommended most per segment:")
        cells = [
            [x["segment"], x["rank"], x["product_id"], f"{x['customers']:,}"] for x in r.per_segment
        ]
        print(format_table(["segment", "#", "product", "customers"], cells, "lrlr"))
    print(f"\n{r.customers:,} customers' top {args.top} in {r.table} version {r.version}")
    return 0
