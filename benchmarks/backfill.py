"""Backfill of N daily snapshots (one commit per date, and all in one commit as with
`--single-commit`) against N separate `segment` runs and one snapshot, in one run on the same
data.

    .venv/bin/python benchmarks/backfill.py --customers 20000 --days 730 --snapshots 14 --repeat 3

Generates the data once (cached under benchmarks/.data), waits before each repetition until no
pytest runs on the machine, then alternates the two ways of building
the same snapshots into fresh warehouses, and prints the median wall time of each and their ratio.
Results are appended as a JSON line to benchmarks/results/backfill.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import tempfile
import time

import common  # first: it decides which rfm_spark is imported (RFM_BENCH_CODE)

from rfm_spark import __version__
from rfm_spark.config import Config, SparkSettings
from rfm_spark.pipeline import run_backfill, run_segment, snapshot_dates
from rfm_spark.progress import Progress
from rfm_spark.session import build_spark


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--customers", type=int, default=20000)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--snapshots", type=int, default=14)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--master", default="local[2]")
    args = p.parse_args()

    data = common.ensure_data(args.customers, args.days)
    spark = build_spark(
        SparkSettings(
            master=args.master,
            conf={
                "spark.sql.shuffle.partitions": "8",
                "spark.driver.memory": "6g",
                "spark.ui.enabled": "false",
            },
        ),
        quiet=True,
    )
    spark.sparkContext.setLogLevel("ERROR")
    end = common.END_DATE
    dates = snapshot_dates(end - dt.timedelta(days=args.snapshots - 1), end)
    quiet = Progress("bench", quiet=True)

    def config(warehouse: str) -> Config:
        return Config().with_overrides(
            {"warehouse": warehouse, "input.path": str(data / "transactions")}
        )

    modes = ("backfill", "backfill_single", "separate", "one_snapshot")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(args.repeat):
        for mode in modes if i % 2 == 0 else tuple(reversed(modes)):
            common.wait_quiet()
            wh = tempfile.mkdtemp(prefix=f"bench-{mode}-")
            t0 = time.perf_counter()
            if mode == "backfill":
                run_backfill(spark, config(wh), dates, progress=quiet)
            elif mode == "backfill_single":
                run_backfill(spark, config(wh), dates, single_commit=True, progress=quiet)
            elif mode == "one_snapshot":
                run_segment(spark, config(wh), dates[-1], progress=quiet)
            else:
                for d in dates:
                    run_segment(spark, config(wh), d, progress=quiet)
            times[mode].append(time.perf_counter() - t0)
            shutil.rmtree(wh, ignore_errors=True)
            print(f"run {i + 1} {mode}: {times[mode][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    record = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rfm_spark": __version__,
        "rfm_spark_code": common.machine()["rfm_spark_code"],
        "spark": spark.version,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "master": args.master,
        "customers": args.customers,
        "days": args.days,
        "transactions": spark.read.parquet(str(data / "transactions")).count(),
        "snapshots": len(dates),
        "runs": times,
        "median_s": med,
        "ratio_separate_over_backfill": med["separate"] / med["backfill"],
        "ratio_backfill_over_one_snapshot": med["backfill"] / med["one_snapshot"],
        "ratio_backfill_single_over_one_snapshot": med["backfill_single"] / med["one_snapshot"],
    }
    common.append_result("backfill.jsonl", record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
