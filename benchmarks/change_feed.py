"""Corrections in a Delta input: an incremental run after updates and deletes, cold commands.

    .venv/bin/python benchmarks/change_feed.py --size 10m --share 0.001

The generated data set is written once as a Delta table with its change data feed on. A first
incremental run reads all of it into the activity table; then, in one commit each, a share of
the rows gets a corrected amount and the same share is deleted, and an incremental run takes
the changes (recomputing the customer-days that lost a row from the input as of the last
commit). Beside it: an incremental run with nothing new (the floor of the incremental path)
and a full run of the same snapshot, whose result must equal the incremental one customer by
customer. One JSON line goes to results/change_feed.jsonl.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import common
from incremental import same_snapshot, segment


def delta_input(data: Path) -> Path:
    """The transactions as a Delta table with the change data feed on (made once)."""
    out = data / "delta-cdf"
    if (out / "_delta_log").exists():
        return out
    spark = common.local_session()
    spark.read.parquet(str(data / "transactions")).write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(str(out))
    spark.stop()
    return out


def correct(table: Path, share: float) -> dict[str, int]:
    """One UPDATE (amounts of a share of the rows, +10%) and one DELETE (another share)."""
    spark = common.local_session()
    every = round(1 / share)
    where = f"delta.`{table}`"
    pick = f"pmod(xxhash64(customer_id, order_id, line_no), {every})"  # rows spread at random
    counts = {}
    for name, sql in (
        ("updated", f"UPDATE {where} SET amount = amount * 1.1 WHERE {pick} = 1"),
        ("deleted", f"DELETE FROM {where} WHERE {pick} = 2"),
    ):
        row = spark.sql(sql).first()
        counts[name] = int(row[0]) if row is not None else -1
    spark.stop()
    return counts


def main() -> None:
    p = common.parser(__doc__, default_size="10m")
    p.add_argument("--share", type=float, default=0.001, help="share of rows updated, and deleted")
    args = p.parse_args()
    customers = args.customers or common.SIZES[args.size]
    data = common.ensure_data(customers)
    work = common.DATA / f"change-feed-{customers}"
    shutil.rmtree(work, ignore_errors=True)
    source = delta_input(data)
    table = work / "input"
    shutil.copytree(source, table)  # each script run corrects its own copy
    day = common.END_DATE
    delta = ("--input-format", "delta")
    runs = {"first_incremental": segment(table, work / "inc", day, "incremental", *delta)}
    runs["nothing_new"] = segment(table, work / "inc", day, "incremental", *delta)
    changed = correct(table, args.share)
    print(f"  corrected: {changed}", file=sys.stderr, flush=True)
    runs["after_corrections"] = segment(table, work / "inc", day, "incremental", *delta)
    runs["full"] = segment(table, work / "full", day, "full", *delta)
    equal = same_snapshot(work / "inc", work / "full", day)
    record = {
        **common.header("benchmarks/change_feed.py"),
        "size": args.size,
        "customers": customers,
        "share": args.share,
        "changed_rows": changed,
        "runs": runs,
        "equal": equal,
        "note": args.note,
    }
    common.append_result("change_feed.jsonl", record)
    print({k: v["wall_s"] for k, v in runs.items()}, "equal:", equal)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
