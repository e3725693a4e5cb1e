"""Where the time of one run goes: Spark jobs and stages from the event log.

    .venv/bin/python benchmarks/stages.py --size 10m --engine rfm_spark
    .venv/bin/python benchmarks/stages.py --size 10m --engine spark_floor

Runs the engine once (as in peers.py) with Spark's event log on, then prints every job (its
call site, wall time) and stage (tasks, wall time, summed task run time, input and shuffle
bytes), and the progress steps of ``run_segment``. One JSON line per run goes to
benchmarks/results/stages.jsonl. Not a timing benchmark (single run, event log overhead).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import common


def parse_event_log(paths: list[Path]) -> dict[str, Any]:
    jobs: dict[int, dict[str, Any]] = {}
    stages: dict[int, dict[str, Any]] = {}
    tasks: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    lines = [x for p in paths for x in p.read_text().splitlines()]
    for i, line in enumerate(lines):
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # the log of a killed process ends in a partial line
            raise
        kind = ev.get("Event")
        if kind == "SparkListenerJobStart":
            props = ev.get("Properties") or {}
            jobs[ev["Job ID"]] = {
                "job": ev["Job ID"],
                "start": ev["Submission Time"],
                "stages": ev["Stage IDs"],
                # the call site without the folder it lies in: "collect at rfm_spark/x.py:12"
                "what": re.sub(
                    r"\S*/(rfm_spark/)",
                    r"\1",
                    props.get("spark.job.description") or props.get("callSite.short", ""),
                ),
            }
        elif kind == "SparkListenerJobEnd":
            jobs[ev["Job ID"]]["s"] = (ev["Completion Time"] - jobs[ev["Job ID"]]["start"]) / 1e3
        elif kind == "SparkListenerStageCompleted":
            info = ev["Stage Info"]
            if "Submission Time" not in info:
                continue  # skipped stage (its shuffle output was reused)
            stages[info["Stage ID"]] = {
                "stage": info["Stage ID"],
                "name": info["Stage Name"],
                "tasks": info["Number of Tasks"],
                "s": (info["Completion Time"] - info["Submission Time"]) / 1e3,
            }
        elif kind == "SparkListenerTaskEnd":
            m = ev.get("Task Metrics") or {}
            t = tasks[ev["Stage ID"]]
            t["task_s"] += m.get("Executor Run Time", 0) / 1e3
            t["gc_s"] += m.get("JVM GC Time", 0) / 1e3
            t["input_mb"] += (m.get("Input Metrics") or {}).get("Bytes Read", 0) / 2**20
            sr = m.get("Shuffle Read Metrics") or {}
            t["shuffle_read_mb"] += (
                sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
            ) / 2**20
            sw = m.get("Shuffle Write Metrics") or {}
            t["shuffle_write_mb"] += sw.get("Shuffle Bytes Written", 0) / 2**20
            t["spill_mb"] += m.get("Disk Bytes Spilled", 0) / 2**20
            t["records_in"] += (m.get("Input Metrics") or {}).get("Records Read", 0)
            t["shuffle_records_written"] += sw.get("Shuffle Records Written", 0)
    for sid, st in stages.items():
        st.update({k: round(v, 2) for k, v in tasks[sid].items()})
    for j in jobs.values():
        j.pop("start", None)
    return {"jobs": list(jobs.values()), "stages": [stages[k] for k in sorted(stages)]}


def main() -> None:
    p = common.parser(__doc__, default_size="10m")
    p.add_argument("--engine", choices=("rfm_spark", "naive", "spark_floor"), default="rfm_spark")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--conf", action="append", default=[], help="extra key=value Spark conf")
    args = p.parse_args()

    from rfm_spark.config import Config, SparkSettings
    from rfm_spark.session import build_spark

    customers = args.customers or common.SIZES[args.size]
    data = common.ensure_data(customers)
    tx = str(data / "transactions")
    logs = common.DATA / "eventlog"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    conf = {
        **common.SPARK_CONF,
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(logs),
        "spark.eventLog.compress": "false",
        **dict(kv.split("=", 1) for kv in args.conf),
    }
    common.wait_quiet()
    load = common.load1()
    spark = build_spark(SparkSettings(master=args.master, conf=conf), quiet=True)
    spark.sparkContext.setLogLevel("ERROR")
    out = common.DATA / "out" / "profile"
    shutil.rmtree(out, ignore_errors=True)
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.engine == "rfm_spark":
        from rfm_spark.pipeline import run_segment
        from rfm_spark.progress import Progress

        config = Config().with_overrides({"warehouse": str(out), "input.path": tx})
        steps = common.step_times(
            run_segment(
                spark, config, common.END_DATE, progress=Progress("profile", quiet=True)
            ).timings
        )
    elif args.engine == "naive":
        from reference import naive_segment

        naive_segment(spark, tx, common.END_DATE, str(out))
    elif args.engine == "spark_floor":
        from reference import spark_floor

        spark_floor(spark, tx, common.END_DATE)
    seconds = time.perf_counter() - t0
    spark.stop()
    # Spark 4 writes rolling event logs: a folder eventlog_v2_<app>/ with events_N_<app> files
    log = sorted(f for f in logs.rglob("*") if f.is_file() and "appstatus" not in f.name)
    prof = parse_event_log(log)
    rec = {
        **common.header("stages.py"),
        "engine": args.engine,
        "master": args.master,
        "conf": {k: v for k, v in conf.items() if not k.startswith("spark.eventLog")},
        "customers": customers,
        "seconds": seconds,
        "load1_start": load,
        "steps_s": steps,
        **prof,
        "note": args.note,
    }
    common.append_result("stages.jsonl", rec)
    print(f"{args.engine}: {seconds:.1f} s; steps {steps}")
    for j in prof["jobs"]:
        print(f"job {j['job']:>3} {j.get('s', 0):7.2f} s  stages {j['stages']}  {j['what'][:70]}")
    print(
        f"{'stage':>5} {'tasks':>5} {'wall_s':>7} {'task_s':>7} {'gc_s':>5} {'in_MB':>7} "
        f"{'shR_MB':>7} {'shW_MB':>7} {'spill':>6}  name"
    )
    for s in prof["stages"]:
        print(
            f"{s['stage']:>5} {s['tasks']:>5} {s['s']:>7.2f} {s.get('task_s', 0):>7.2f} "
            f"{s.get('gc_s', 0):>5.1f} {s.get('input_mb', 0):>7.1f} "
            f"{s.get('shuffle_read_mb', 0):>7.1f} {s.get('shuffle_write_mb', 0):>7.1f} "
            f"{s.get('spill_mb', 0):>6.1f}  {s['name'][:60]}"
        )


if __name__ == "__main__":
    main()
