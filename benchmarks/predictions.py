"""The predictive commands timed as users run them: cold `rfm-spark clv fit`, `clv score`,
`churn train`, `churn score` and `recommend`, each in a fresh process (JVM start included).

    .venv/bin/python benchmarks/predictions.py --size 1m --repeat 3

On the generated data set of ``--size`` (cached under benchmarks/.data), each repetition runs
the five commands in order against a fresh warehouse and records each command's wall time and
its own step times; the medians over the repetitions are printed and every run is appended to
benchmarks/results/predictions.jsonl.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

import common  # first: it decides which rfm_spark is imported (RFM_BENCH_CODE)


def commands(data: Path, warehouse: Path) -> dict[str, list[str]]:
    cli = [str(Path(sys.executable).parent / "rfm-spark")]
    day = common.END_DATE.isoformat()
    base = ["--snapshot-date", day, "--input", str(data / "transactions"),
            "--warehouse", str(warehouse)]  # fmt: skip
    spark = [
        "--spark-conf",
        "spark.sql.shuffle.partitions=8",
        "--spark-conf",
        "spark.driver.memory=8g",
    ]
    return {
        "clv fit": [*cli, "clv", "fit", *base, *spark],
        "clv score": [*cli, "clv", "score", *base, *spark],
        "churn train": [*cli, "churn", "train", *base, *spark],
        "churn score": [*cli, "churn", "score", *base, *spark],
        "recommend": [*cli, "recommend", *base, "--products-input", str(data / "products"), *spark],
    }


def main() -> None:
    p = common.parser(__doc__, "1m")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    customers = args.customers or common.SIZES[args.size]
    data = common.ensure_data(customers)
    rows = sum(1 for _ in (data / "transactions").glob("part-*"))  # files, for the record
    runs = []
    for i in range(args.repeat):
        waited = common.wait_quiet()
        warehouse = common.DATA / f"predictions-wh-{customers}"
        shutil.rmtree(warehouse, ignore_errors=True)
        run = {
            name: common.cold_command(cmd, name) for name, cmd in commands(data, warehouse).items()
        }
        record = {**common.header("benchmarks/predictions.py"), "customers": customers,
                  "transaction_files": rows, "repeat": i + 1, "waited_s": waited,
                  "commands": run, "note": args.note}  # fmt: skip
        common.append_result("predictions.jsonl", record)
        runs.append(run)
        print(
            f"run {i + 1}: " + ", ".join(f"{k} {v['wall_s']:.1f} s" for k, v in run.items()),
            flush=True,
        )
    print(
        f"\nmedians over {len(runs)} runs, {customers:,} customers (cold commands, JVM start included):"
    )
    for name in runs[0]:
        wall = statistics.median(r[name]["wall_s"] for r in runs)
        print(f"  {name:12s} {wall:7.1f} s")


if __name__ == "__main__":
    main()
