"""The day-after run: ``segment --incremental`` against ``segment --full``, cold commands.

The generated transactions (period ending before END_DATE) are split once into the history
(before ``END_DATE - days_after``) and one folder per later day. A fresh input folder starts
with the history; a first incremental run reads all of it into the activity table (timed as
``first``). Then, for each held-back day in turn, that day's files are added to the input
folder, an incremental run makes the next snapshot (``incremental``) and a full run makes the
same snapshot in another warehouse (``full``); the two snapshots are compared customer by
customer with deltalake. Each timing is a whole command as a user runs it (Python and JVM
start included), with the run's own step times parsed from its progress lines. Medians over
the days, and the ratio full / incremental from the same script run.

    .venv/bin/python benchmarks/incremental.py --size 10m --days-after 3
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    END_DATE,
    SIZES,
    SPARK_CONF,
    append_result,
    cold_command,
    data_dir,
    ensure_data,
    header,
    local_session,
    parser,
    wait_quiet,
)


def split(data: Path, days_after: int) -> Path:
    """History and per-day folders of the transactions (once per data set and split)."""
    out = data / f"split-{days_after}"
    if (out / "_SUCCESS").exists():
        return out
    from pyspark.sql import functions as F

    spark = local_session()
    tx = spark.read.parquet(str(data / "transactions"))
    cut = END_DATE - dt.timedelta(days=days_after)
    tx.filter(F.to_date("order_ts") < F.lit(cut)).write.mode("overwrite").parquet(
        str(out / "history")
    )
    for i in range(days_after):
        day = cut + dt.timedelta(days=i)
        rows = tx.filter(F.to_date("order_ts") == F.lit(day)).coalesce(1)
        rows.write.mode("overwrite").parquet(str(out / f"day-{day.isoformat()}"))
    spark.stop()
    (out / "_SUCCESS").touch()
    return out


def add_files(source: Path, input_dir: Path) -> None:
    """Hard-link a folder's Parquet files into the input folder (as a delivery would)."""
    input_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(source.glob("*.parquet")):
        os.link(f, input_dir / f.name)


def segment(
    input_dir: Path, warehouse: Path, day: dt.date, mode: str, *more: str
) -> dict[str, Any]:
    """One cold ``rfm-spark segment`` command (``more``: further flags): wall time and step
    times."""
    cmd = [sys.executable, "-m", "rfm_spark.cli", "segment", f"--{mode}", *more]
    cmd += ["--snapshot-date", day.isoformat(), "--input", str(input_dir)]
    cmd += ["--warehouse", str(warehouse), "--master", "local[2]"]
    for key, value in SPARK_CONF.items():
        cmd += ["--spark-conf", f"{key}={value}"]
    wait_quiet()
    run = {"mode": mode, "snapshot": day.isoformat(), **cold_command(cmd, f"{mode} run for {day}")}
    print(f"  {mode} {day}: {run['wall_s']} s {run['steps']}", file=sys.stderr, flush=True)
    return run


def same_snapshot(a: Path, b: Path, day: dt.date) -> bool:
    """The two warehouses' snapshots of ``day`` agree customer by customer (run ids aside)."""
    import pandas as pd
    from deltalake import DeltaTable

    def rows(warehouse: Path) -> pd.DataFrame:
        df = DeltaTable(str(warehouse / "customer_segments")).to_pandas(
            filters=[("snapshot_date", "=", day)]
        )
        return df.drop(columns=["run_id"]).set_index("customer_id").sort_index()

    try:
        pd.testing.assert_frame_equal(rows(a), rows(b))
        return True
    except AssertionError as exc:
        print(f"  snapshots of {day} differ: {exc}", file=sys.stderr)
        return False


def main() -> None:
    p = parser(__doc__, "10m")
    p.add_argument("--days-after", type=int, default=3, help="held-back days, one run each")
    args = p.parse_args()
    customers = args.customers or SIZES[args.size]
    ensure_data(customers)
    parts = split(data_dir(customers), args.days_after)
    work = Path(tempfile.mkdtemp(prefix="rfm-bench-inc-", dir=parts))
    try:
        input_dir = work / "input"
        add_files(parts / "history", input_dir)
        first_day = END_DATE - dt.timedelta(days=args.days_after)
        first = segment(input_dir, work / "inc", first_day, "incremental")
        runs = []
        for i in range(args.days_after):
            day = first_day + dt.timedelta(days=i)
            add_files(parts / f"day-{day.isoformat()}", input_dir)
            snapshot = day + dt.timedelta(days=1)
            inc = segment(input_dir, work / "inc", snapshot, "incremental")
            full = segment(input_dir, work / "full", snapshot, "full")
            runs.append(
                {
                    "incremental": inc,
                    "full": full,
                    "equal": same_snapshot(work / "inc", work / "full", snapshot),
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {m: statistics.median(r[m]["wall_s"] for r in runs) for m in ("incremental", "full")}
    record = {
        **header("incremental.py"),
        "size": None if args.customers else args.size,
        "customers": customers,
        "days_after": args.days_after,
        "first_incremental": first,
        "runs": runs,
        "median_wall_s": med,
        "full_over_incremental": round(med["full"] / med["incremental"], 2),
        "all_equal": all(r["equal"] for r in runs),
        "note": args.note,
    }
    append_result("incremental.jsonl", record)
    print({k: record[k] for k in ("median_wall_s", "full_over_incremental", "all_equal")})


if __name__ == "__main__":
    main()
