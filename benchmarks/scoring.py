"""The scoring step alone under local[1] and local[2]: rfm-spark's exact ntile (cut keys, a
narrow map) against the naive global-window ntile, on the same cached features.

    .venv/bin/python benchmarks/scoring.py --size 30m --repeat 3
    .venv/bin/python benchmarks/scoring.py --synthetic 8000000 --modes ours,naive --repeat 3

For each master a child process builds the features once (cached, counted: not timed): from
the generated transactions, or with ``--synthetic N`` as N made-up customers (scoring at
customer counts whose transactions would not fit here). It then alternates the scorers; each timed run scores all three axes and forces every row through a
``noop`` write. Before each repetition it waits until no ``pytest`` runs and records the load.
The two scorers' outputs are compared per customer once per process. Speed-up = median under
local[1] / median under local[2], from one script run. One JSON line per script run goes to
benchmarks/results/scoring.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import common


def synthetic_features(spark: Any, customers: int) -> Any:
    """``customers`` feature rows made from ``spark.range`` (no transactions): skewed,
    heavily tied measures like real ones (recency 1..365, frequency mostly 1-3, monetary with
    cents), spread over the shuffle partitions. For scoring at customer counts whose
    transactions would not fit this machine."""
    from pyspark.sql import functions as F

    h = F.abs(F.xxhash64("id"))
    return spark.range(customers, numPartitions=8).select(
        F.format_string("C%010d", "id").alias("customer_id"),
        (1 + h % 365).cast("int").alias("recency_days"),
        (1 + F.floor(F.pow((h % 1000) / 1000.0, 4) * 40)).cast("bigint").alias("frequency"),
        ((h % 5_000_000) / F.lit(100)).cast("decimal(18,2)").alias("monetary"),
    )


def worker(
    data: Path | None, master: str, repeat: int, smoke: bool, synthetic: int, modes_arg: str
) -> dict[str, Any]:
    from pyspark import StorageLevel
    from reference import naive_scores

    from rfm_spark.config import Config, SparkSettings
    from rfm_spark.features import daily_aggregates, rfm_features
    from rfm_spark.io.inputs import read_transactions
    from rfm_spark.scoring import score
    from rfm_spark.session import build_spark
    from rfm_spark.validation import observe_rows

    spark = build_spark(SparkSettings(master=master, conf=common.SPARK_CONF), quiet=True)
    spark.sparkContext.setLogLevel("ERROR")
    config = Config().with_overrides({"input.path": str(data / "transactions") if data else "-"})
    if synthetic:
        features = synthetic_features(spark, synthetic)
    else:
        assert data is not None
        start = common.END_DATE - dt.timedelta(days=365)
        valid, _ = observe_rows(
            read_transactions(spark, config.input), start=start, end=common.END_DATE
        )
        features = rfm_features(
            daily_aggregates(valid), snapshot_date=common.END_DATE, lookback_days=365
        )
    features = features.persist(StorageLevel.MEMORY_AND_DISK)
    customers = features.count()

    def ours() -> Any:
        scored, info = score(features, config.scoring, rows=customers)
        return scored, dict(info.ranges)

    def naive() -> Any:
        return naive_scores(features), {}

    # correctness once, untimed: the two scorers per customer
    a, ranges = ours()
    b, _ = naive()
    cols = ["customer_id", "r_score", "f_score", "m_score"]
    mismatched = a.select(*cols).exceptAll(b.select(*cols)).count()
    all_modes = {"ours": ours, "naive": naive}
    modes = {m: all_modes[m] for m in modes_arg.split(",")}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for i in range(repeat):
        for mode in modes if i % 2 == 0 else list(reversed(modes)):
            waited = 0.0 if smoke else common.wait_quiet()
            load = common.load1()
            t0 = time.perf_counter()
            scored, _ = modes[mode]()
            scored.write.format("noop").mode("overwrite").save()
            secs = time.perf_counter() - t0
            runs[mode].append(
                {
                    "seconds": secs,
                    "load1_start": load,
                    "waited_for_pytest_s": waited,
                    "pytest_ran_meanwhile": common.pytest_running(),
                }
            )
            print(f"  {master} run {i + 1} {mode}: {secs:.1f} s", file=sys.stderr, flush=True)
    rec = {
        "master": master,
        "customers_scored": customers,
        "ranges": ranges,
        "scores_mismatched_rows": mismatched,
        "runs": runs,
        "median_s": {m: statistics.median(r["seconds"] for r in v) for m, v in runs.items()},
        "memory": common.peak_memory_mb(),
    }
    spark.stop()
    return rec


def main() -> None:
    p = common.parser(__doc__, default_size="30m")
    p.add_argument(
        "--synthetic", type=int, default=0, help="score N synthetic customers (no transactions)"
    )
    p.add_argument("--modes", default="ours,naive")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--masters", default="local[2],local[1]")
    p.add_argument("--smoke", action="store_true", help="no pytest gate, nothing recorded")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        data = Path(args.data) if args.data else None
        rec = worker(data, args.worker, args.repeat, args.smoke, args.synthetic, args.modes)
        print(json.dumps(rec), flush=True)
        return

    customers = args.customers or common.SIZES[args.size]
    data = None if args.synthetic else common.ensure_data(customers)
    per_master: dict[str, Any] = {}
    for master in args.masters.split(","):
        cmd = [__file__, "--worker", master, "--modes", args.modes]
        cmd += ["--data", str(data)] if data else ["--synthetic", str(args.synthetic)]
        cmd += ["--repeat", str(args.repeat)] + (["--smoke"] if args.smoke else [])
        per_master[master] = common.run_worker(cmd, f"worker {master}")
    med = {m: r["median_s"] for m, r in per_master.items()}
    speedup = {}
    if "local[1]" in med and "local[2]" in med:
        speedup = {mode: med["local[1]"][mode] / med["local[2]"][mode] for mode in med["local[1]"]}
    naive_over_ours = {m: v["naive"] / v["ours"] for m, v in med.items() if "naive" in v}
    record = {
        **common.header("scoring.py"),
        "spark_conf": common.SPARK_CONF,
        "size": None if args.customers or args.synthetic else args.size,
        "customers_generated": None if args.synthetic else customers,
        "synthetic_customers": args.synthetic or None,
        "per_master": per_master,
        "median_s": med,
        "speedup_local1_to_local2": speedup,
        "naive_over_ours": naive_over_ours,
        "note": args.note,
    }
    if not args.smoke:
        common.append_result("scoring.jsonl", record)
    print(json.dumps({k: record[k] for k in ("median_s", "speedup_local1_to_local2")}, indent=2))
    print(json.dumps({m: r["scores_mismatched_rows"] for m, r in per_master.items()}))


if __name__ == "__main__":
    main()
