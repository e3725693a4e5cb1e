"""rfm-spark `segment` end to end against its peers, in one run on the same data.

    .venv/bin/python benchmarks/peers.py --size 10m --repeat 3
    .venv/bin/python benchmarks/peers.py --size 30m --repeat 3 --engines rfm_spark,naive,duckdb
    (the default engines are all but rfm_spark_keep)

Engines (each repetition of each engine runs in its own child process, so that its peak memory
is its own; the order of the engines alternates between repetitions):

- ``rfm_spark``: ``run_segment`` end to end: read, validate, features, exact ntile scores,
  segments, the Delta commit (delta-rs backend) and the summary read back from the table.
- ``rfm_spark_keep``: the same with ``validation.duplicates: keep`` (no exact-duplicate
  detection, so only the needed columns are read): what finding exact copies costs.
- ``naive``: the tutorial PySpark reference (benchmarks/reference.py): global-window ``ntile``.
- ``duckdb``: DuckDB SQL, the same features and ntile scores from the same Parquet.
- ``spark_floor``: read the needed columns and one group-by aggregate, nothing else.
- ``pandas``: pandas (only at sizes where it fits in memory).

Times are the work inside the child after its engine is ready (Spark: after the session is
built, whose start-up is recorded separately as ``startup_s``). Every JVM is fresh, so every
Spark run includes its JIT warm-up; that is the same for all Spark engines. Before every
repetition the script waits until no ``pytest`` runs on the machine and records the 1-minute
load average. After the runs, the outputs of the last repetition are compared row by row with
rfm-spark's (features, scores, segment per customer). One JSON line per script run goes to
benchmarks/results/peers.jsonl (and one per finished repetition, as it finishes, to
benchmarks/results/peers_runs.jsonl).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import common

ENGINES = ("rfm_spark", "rfm_spark_keep", "naive", "duckdb", "spark_floor", "pandas")
SPARK_ENGINES = ("rfm_spark", "rfm_spark_keep", "naive", "spark_floor")
COMPARED = (
    "recency_days",
    "frequency",
    "monetary",
    "purchase_days",
    "first_purchase_date",
    "last_purchase_date",
    "tenure_days",
    "r_score",
    "f_score",
    "m_score",
    "segment",
)


# --------------------------------------------------------------------------------------------
# worker: one engine, one repetition, in its own process


def worker(engine: str, data: Path, out: Path, master: str, threads: int) -> dict[str, Any]:
    snapshot = common.END_DATE
    tx = str(data / "transactions")
    rec: dict[str, Any] = {"engine": engine}
    if engine in SPARK_ENGINES:
        from rfm_spark.config import SparkSettings
        from rfm_spark.session import build_spark

        t0 = time.perf_counter()
        spark = build_spark(SparkSettings(master=master, conf=common.SPARK_CONF), quiet=True)
        spark.sparkContext.setLogLevel("ERROR")
        rec["startup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if engine in ("rfm_spark", "rfm_spark_keep"):
            from rfm_spark.config import Config
            from rfm_spark.pipeline import run_segment
            from rfm_spark.progress import Progress

            overrides = {"warehouse": str(out), "input.path": tx}
            if engine == "rfm_spark_keep":  # no exact-duplicate detection
                overrides["validation.duplicates"] = "keep"
            config = Config().with_overrides(overrides)
            res = run_segment(spark, config, snapshot, progress=Progress("bench", quiet=True))
            rec["steps_s"] = common.step_times(res.timings)
            rec["customers"] = res.customers
            rec["scoring_ranges"] = dict(res.scoring.ranges)
        elif engine == "naive":
            from reference import naive_segment

            naive_segment(spark, tx, snapshot, str(out))
        else:
            from reference import spark_floor

            spark_floor(spark, tx, snapshot)
        rec["seconds"] = time.perf_counter() - t0
        rec["memory"] = common.peak_memory_mb()
        spark.stop()
    elif engine == "duckdb":
        from reference import duckdb_segment

        t0 = time.perf_counter()
        duckdb_segment(f"{tx}/*.parquet", snapshot, str(out), threads)
        rec["seconds"] = time.perf_counter() - t0
        rec["memory"] = common.peak_memory_mb()
    elif engine == "pandas":
        from reference import pandas_segment

        t0 = time.perf_counter()
        pandas_segment(tx, snapshot, str(out))
        rec["seconds"] = time.perf_counter() - t0
        rec["memory"] = common.peak_memory_mb()
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    return rec


# --------------------------------------------------------------------------------------------
# correctness: every engine's output against rfm-spark's, per customer


def _relation(engine: str, out: Path) -> str:
    if engine in ("rfm_spark", "rfm_spark_keep"):
        part = out / "customer_segments" / f"snapshot_date={common.END_DATE}"
        return f"read_parquet('{part}/*.parquet')"
    if engine == "naive":
        return f"read_parquet('{out}/*.parquet')"
    if engine == "duckdb":
        return f"read_parquet('{out}')"
    if engine == "pandas":
        return (
            f"(SELECT * EXCLUDE (monetary_cents), "
            f"CAST(monetary_cents / 100 AS DECIMAL(18, 2)) AS monetary FROM read_parquet('{out}'))"
        )
    raise ValueError(engine)


def compare(outs: dict[str, Path]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    base = _relation("rfm_spark", outs["rfm_spark"])
    checks: dict[str, Any] = {}
    for engine, out in outs.items():
        if engine in ("rfm_spark", "spark_floor"):
            continue
        other = _relation(engine, out)
        diffs = ", ".join(
            f"count(*) FILTER (WHERE a.{c} IS DISTINCT FROM b.{c}) AS {c}" for c in COMPARED
        )
        row = con.execute(
            f"SELECT count(*) AS rows, count(a.customer_id) AS ours, "
            f"count(b.customer_id) AS theirs, {diffs} "
            f"FROM {base} a FULL OUTER JOIN {other} b ON a.customer_id = b.customer_id"
        ).fetchone()
        assert row is not None
        names = ["rows", "ours", "theirs", *COMPARED]
        got = dict(zip(names, row, strict=True))
        mismatched = {c: got[c] for c in COMPARED if got[c]}
        checks[engine] = {
            "customers": got["ours"],
            "matched": got["rows"] == got["ours"] == got["theirs"] and not mismatched,
            "missing_or_extra": got["rows"] - min(got["ours"], got["theirs"]),
            "mismatched_columns": mismatched,
        }
    con.close()
    return checks


# --------------------------------------------------------------------------------------------
# orchestrator


def run_one(
    engine: str, data: Path, out: Path, master: str, threads: int, *, smoke: bool = False
) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    waited = 0.0 if smoke else common.wait_quiet()
    load = common.load1()
    worker_args = ["--worker", engine, "--data", str(data), "--out", str(out)]
    worker_args += ["--master", master, "--threads", str(threads)]
    rec = common.run_worker([__file__, *worker_args], engine)
    rec["load1_start"] = load
    rec["waited_for_pytest_s"] = waited
    rec["pytest_ran_meanwhile"] = common.pytest_running()
    return rec


def main() -> None:
    p = common.parser(__doc__, default_size="10m")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--engines", default=",".join(e for e in ENGINES if e != "rfm_spark_keep"))
    p.add_argument("--master", default="local[2]")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    p.add_argument("--smoke", action="store_true", help="no pytest gate, nothing recorded")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        rec = worker(args.worker, Path(args.data), Path(args.out), args.master, args.threads)
        print(json.dumps(rec), flush=True)
        return

    customers = args.customers or common.SIZES[args.size]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown or "rfm_spark" not in engines:
        raise SystemExit(f"--engines: unknown {sorted(unknown)} or rfm_spark missing")
    data = common.ensure_data(customers)
    import pyarrow.dataset as ds

    rows = ds.dataset(str(data / "transactions"), format="parquet").count_rows()
    work = common.DATA / "out"
    work.mkdir(parents=True, exist_ok=True)
    outs = {
        e: work / (f"{e}.parquet" if e in ("duckdb", "pandas") else e)
        for e in engines
        if e != "spark_floor"
    }
    print(f"{rows:,} transactions, {customers:,} customers; engines {engines}", flush=True)

    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    started = common.now()
    for i in range(args.repeat):
        for engine in engines if i % 2 == 0 else list(reversed(engines)):
            out = outs.get(engine, work / "floor")
            rec = run_one(engine, data, out, args.master, args.threads, smoke=args.smoke)
            runs[engine].append(rec)
            if not args.smoke:  # every finished run at once, so that an interrupted script
                # run still leaves its measurements
                common.append_result(
                    "peers_runs.jsonl", {"script_run": started, "rows": rows, **rec}
                )
            print(
                f"run {i + 1} {engine}: {rec['seconds']:.1f} s, "
                f"peak {rec['memory']['total_mb']:.0f} MiB, load {rec['load1_start']:.2f}",
                flush=True,
            )

    med = {e: statistics.median(r["seconds"] for r in runs[e]) for e in engines}
    mem = {e: max(r["memory"]["total_mb"] for r in runs[e]) for e in engines}
    ratios = {f"{e}_over_rfm_spark": med[e] / med["rfm_spark"] for e in engines if e != "rfm_spark"}
    if "spark_floor" in med:
        ratios["rfm_spark_over_spark_floor"] = med["rfm_spark"] / med["spark_floor"]
    checks = compare(outs)
    record = {
        **common.header("peers.py"),
        "master": args.master,
        "spark_conf": common.SPARK_CONF,
        "duckdb_threads": args.threads,
        "size": args.size if not args.customers else None,
        "customers": customers,
        "days": common.DAYS,
        "transactions": rows,
        "snapshot_date": common.END_DATE.isoformat(),
        "repeat": args.repeat,
        "runs": runs,
        "median_s": med,
        "peak_memory_mb": mem,
        "ratios": ratios,
        "correctness": checks,
        "note": args.note,
    }
    if not args.smoke:
        common.append_result("peers.jsonl", record)
    print(json.dumps({k: record[k] for k in ("median_s", "peak_memory_mb", "ratios")}, indent=2))
    print(json.dumps(checks, indent=2))


if __name__ == "__main__":
    main()
