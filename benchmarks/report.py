"""Driver memory of the HTML report: 20 thousand against 1 million customers.

    .venv/bin/python benchmarks/report.py --customers 20000,1000000 --repeat 3

For each size a synthetic ``customer_segments`` table with two snapshots 14 days apart is
written once (cached under benchmarks/.data/report-<customers>; features drawn from skewed
distributions, scores by ntile, segments by the rfm11 scheme). Each repetition builds the
report of the later snapshot in a fresh process (``--worker``) and records the peak RSS of that
Python process (the driver's Python side: what it collected and drew) and of its JVM (in local
mode the JVM is driver and executors at once, so it holds the cached snapshot too), the rows
collected to the driver, and the time of each step. The claim checked: the Python peak and
the rows collected do not grow with the customers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import common  # first: it decides which rfm_spark is imported (RFM_BENCH_CODE)

SNAPSHOT = dt.date(2026, 11, 23)
EARLIER = SNAPSHOT - dt.timedelta(days=14)


def ensure_table(customers: int) -> Path:
    """A warehouse with a two-snapshot customer_segments table of ``customers`` customers."""
    warehouse = common.DATA / f"report-{customers}"
    if (warehouse / "_SUCCESS").exists():
        return warehouse
    from pyspark.sql import functions as F

    from rfm_spark.config import ScoringSettings
    from rfm_spark.io.store import open_store
    from rfm_spark.schemas import OUTPUT_SCHEMA
    from rfm_spark.scoring import score
    from rfm_spark.segments import assign_segments, load_scheme

    spark = common.local_session()
    store = open_store(spark)
    for day, seed in ((EARLIER, 1), (SNAPSHOT, 2)):
        ids = spark.range(customers).select(F.format_string("C%09d", "id").alias("customer_id"))
        features = ids.select(
            "customer_id",
            (F.floor(F.rand(seed) * F.rand(seed + 1) * 365) + 1).cast("int").alias("recency_days"),
            (F.floor(F.exp(F.randn(seed + 2) * 1.1)) + 1).cast("bigint").alias("frequency"),
            F.exp(F.randn(seed + 3) * 1.3 + 5).cast("decimal(18,2)").alias("monetary"),
        )
        scored, _ = score(features, ScoringSettings(), rows=customers)
        out = assign_segments(scored, scheme=load_scheme("rfm11"))
        columns = []
        for f in OUTPUT_SCHEMA.fields:
            if f.name == "snapshot_date":
                column = F.lit(day)
            else:
                column = F.col(f.name) if f.name in out.columns else F.lit(None)
            columns.append(column.cast(f.dataType).alias(f.name))
        rows = out.select(*columns)
        store.write_partition(
            rows,
            str(warehouse / "customer_segments"),
            partition_column="snapshot_date",
            partition_value=day,
            metadata={"snapshot_date": day.isoformat(), "scheme": "rfm11", "made_by": "full"},
        )
    spark.stop()
    (warehouse / "_SUCCESS").touch()
    return warehouse


def worker(warehouse: Path) -> dict[str, object]:
    """One report in this process: step times, rows collected, peak memory."""
    from rfm_spark.config import Config
    from rfm_spark.pipeline.report import collect
    from rfm_spark.report.html import render

    t0 = time.monotonic()
    spark = common.local_session()
    started = time.monotonic() - t0
    config = Config().with_overrides({"warehouse": str(warehouse)})
    t1 = time.monotonic()
    data = collect(spark, config, SNAPSHOT, days=14, outliers=20)
    t2 = time.monotonic()
    page = render(data, days=14)
    t3 = time.monotonic()
    frames = [data.headline, data.sizes, data.grid, data.outliers, data.quarantine]
    frames += [h.counts for h in data.histograms] + [data.score_ranges]
    frames += [f for f in (data.transitions, data.clusters) if f is not None]
    return {
        "startup_s": round(started, 2),
        "collect_s": round(t2 - t1, 2),
        "render_s": round(t3 - t2, 2),
        "rows_collected": int(sum(len(f) for f in frames)),
        "page_kib": round(len(page.encode()) / 1024, 1),
        **common.peak_memory_mb(),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--customers", default="20000,1000000", help="comma-separated sizes")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--note", default="")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker))))
        return
    record: dict[str, object] = {**common.header("report.py"), "note": args.note, "sizes": {}}
    sizes = [int(s) for s in args.customers.split(",")]
    tables = {n: ensure_table(n) for n in sizes}
    runs: dict[int, list[dict[str, object]]] = {n: [] for n in sizes}
    for i in range(args.repeat):
        for n in sizes if i % 2 == 0 else reversed(sizes):  # alternate the order
            common.wait_quiet()
            load = common.load1()
            run = common.run_worker([__file__, "--worker", str(tables[n])], f"report {n}")
            runs[n].append({**run, "load1_start": load})
            print(f"  {n:>9,} customers: {run}", file=sys.stderr, flush=True)
    for n in sizes:
        median = {
            k: statistics.median(float(r[k]) for r in runs[n])  # type: ignore[arg-type]
            for k in ("collect_s", "render_s", "python_mb", "jvm_mb", "rows_collected")
        }
        record["sizes"][str(n)] = {"runs": runs[n], "median": median}  # type: ignore[index]
        print(f"{n:>9,} customers: median {median}")
    common.append_result("report.jsonl", record)


if __name__ == "__main__":
    main()
