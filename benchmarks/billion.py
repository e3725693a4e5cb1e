"""A billion rows on this machine: one cold `rfm-spark segment` over the generated data set of
about 1,000,000,000 transaction rows (25,450,000 customers, 730 days), with its wall time,
peak memory and spill.

    .venv/bin/python benchmarks/billion.py                       # full run, 1b data set
    .venv/bin/python benchmarks/billion.py --size 10m            # the same at 10M rows (a check)
    .venv/bin/python benchmarks/billion.py --mode incremental    # the first incremental run

``--mode incremental`` runs the first `rfm-spark segment --incremental` into an empty warehouse
(the whole history into ``customer_day_activity``) and also records the size of that table.
``--daily-files`` gives it a copy of the input laid out as files that each hold about one day,
in order (as a daily feed delivers them), and ``--files-per-batch N`` reads them N files per
micro-batch. Before a run it scales the disk a smaller recorded incremental run of the same
layout and batch size used (its peak, or before peaks were sampled the shuffle written, spill
and activity table) to this size's rows; when that exceeds the free disk, it records the
estimate as a blocked run instead of filling the disk, and while it runs it stops the run
when less than 4 GB of disk is left. ``--time-limit MIN`` stops a run after that long;
``--resume`` goes on with a stopped incremental run (its committed batches are kept, as after
any crash) and sums the pieces' times in its summary.

The data set is generated once (18 to 45 minutes here; 13 GB under benchmarks/.data). The
command runs as a user runs it, in a child process with the product's default Spark settings
(200 shuffle partitions, AQE on) on `local[2]`, and a driver of ``--driver-memory`` (in local
mode the driver JVM also runs the executors), with Spark's event log on. Peak memory is the
high-water mark (VmHWM) of the Python process and its JVM, sampled every second, and so is
the disk the run takes (the file system's used bytes above those at its start); spill,
shuffle and GC come from the event log. One JSON line goes to results/billion.jsonl with a
``summary`` line for the targets report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
from stages import parse_event_log

# A run is stopped when the free disk falls below this: the disk estimate before a run is
# scaled from a smaller one, and a full disk would fail every process on the machine.
DISK_FLOOR_GB = 4.0


def _peak_sampler(proc: subprocess.Popen[str], peak: dict[str, Any], limit_s: float) -> None:
    """Keep the largest VmHWM seen of ``proc`` and its JVM (MiB), and the most disk used
    above the start (``disk_mb``), until it ends. Kill its process group when less than
    ``DISK_FLOOR_GB`` of disk is left or after ``limit_s`` (``stopped`` says which)."""
    disk_at_start = shutil.disk_usage(common.DATA).used
    t0 = time.monotonic()
    while proc.poll() is None:
        try:
            now = common.peak_memory_mb(proc.pid)
        except OSError:
            break
        disk = shutil.disk_usage(common.DATA)
        now["disk_mb"] = (disk.used - disk_at_start) / 2**20
        for key in ("python_mb", "jvm_mb", "disk_mb"):
            peak[key] = max(peak.get(key, 0.0), now[key])
        if disk.free < DISK_FLOOR_GB * 2**30:
            peak["stopped"] = f"under {DISK_FLOOR_GB:.0f} GB of disk left"
        elif time.monotonic() - t0 > limit_s:
            peak["stopped"] = f"time limit of {limit_s / 60:g} min"
        if "stopped" in peak:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended on its own meanwhile
                del peak["stopped"]
            break
        time.sleep(1.0)


def watched_command(cmd: list[str], what: str, limit_s: float) -> dict[str, Any]:
    """Run one CLI command in a child process: wall time, step times, peak memory."""
    load = common.load1()
    peak: dict[str, Any] = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so that the JVM is stopped with it
        **common.child_process(),
    )
    sampler = threading.Thread(target=_peak_sampler, args=(proc, peak, limit_s), daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.monotonic() - t0
    sampler.join(timeout=5)
    stopped = peak.pop("stopped", None)
    if stopped:
        print(f"{what} stopped after {wall:.0f} s: {stopped}")
    elif proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {err[-3000:]}")
    return {
        "wall_s": round(wall, 1),
        "steps": common.step_times(common.progress_steps(err)),
        "peak_mb": peak,
        "load1_start": load,
        **({"stopped": stopped} if stopped else {}),
    }


def totals(profile: dict[str, Any]) -> dict[str, float]:
    """Spill, shuffle, input and GC summed over every stage of the event log."""
    keys = ("spill_mb", "shuffle_write_mb", "shuffle_read_mb", "input_mb", "gc_s", "task_s")
    return {k: round(sum(s.get(k, 0) for s in profile["stages"]), 1) for k in keys}


def _layout(daily_files: bool | None, files_per_batch: int | None) -> dict[str, Any]:
    """How an incremental run reads its input, as records hold it (records made before these
    options hold neither: customer-ordered files, one batch)."""
    return {"daily_files": bool(daily_files), "files_per_batch": files_per_batch}


def disk_needed_gb(rows: int, layout: dict[str, Any]) -> tuple[float, str] | None:
    """The disk a first incremental run of ``rows`` rows needs, scaled from the newest recorded
    incremental run of fewer rows with the same ``layout`` (its sampled peak; for runs before
    peaks were sampled, shuffle written + spill + activity table), and that run."""
    r = common.latest(
        "billion.jsonl",
        lambda r: (
            r.get("mode") == "incremental"
            and r.get("completed")
            and not r.get("resumed")  # its peak is the last piece's only
            and r["transactions"] < rows
            and _layout(r.get("daily_files"), r.get("files_per_batch")) == layout
        ),
    )
    if r is None:
        return None
    run = r["incremental"]
    used = run["event_log"]
    mb = run["peak_mb"].get("disk_mb")
    if mb is None:
        mb = used["shuffle_write_mb"] + used["spill_mb"] + run["activity_mb"]
    # Spark's event log (in the sampled disk) grows with the batches and tasks, not the rows.
    log_mb = run.get("event_log_mb", 0.0)
    need_mb = (mb - log_mb) * rows / r["transactions"] + log_mb
    return round(need_mb / 1024, 1), f"{r['size']} run of {r['date'][:10]}"


def fits_on_disk(args: Any, customers: int, rows: int, work: Path) -> bool:
    """Whether a first incremental run of ``rows`` rows may start; when its scaled estimate
    (less what a resumed run's ``work`` folder already holds) exceeds the free disk, the run
    is recorded as blocked instead.

    Raises:
        SystemExit: A large run with no smaller recorded run to scale from.
    """
    estimate = disk_needed_gb(rows, _layout(args.daily_files, args.files_per_batch))
    if estimate is None and rows > 200_000_000:
        raise SystemExit(
            "no smaller first incremental run is recorded to estimate the disk this one "
            "needs; run `benchmarks/billion.py --mode incremental --size 10m` first"
        )
    free = round(shutil.disk_usage(common.DATA).free / 2**30, 1)
    if estimate is not None and args.resume:
        estimate = (round(estimate[0] - _size(work) / 2**30, 1), estimate[1])
    if estimate is not None and estimate[0] > free:
        _blocked(args, customers, rows, estimate[0], estimate[1], free)
        return False
    return True


def _blocked(args: Any, customers: int, rows: int, need: float, basis: str, free: float) -> None:
    summary = (
        f"first incremental run of {rows:,} rows not run: it needs about {need:,.0f} GB of disk "
        f"(scaled from the {basis}), {free:,.0f} GB free"
    )
    record = {
        **common.header("benchmarks/billion.py"),
        "size": args.size,
        "mode": "incremental",
        "customers": customers,
        "transactions": rows,
        **_layout(args.daily_files, args.files_per_batch),
        "completed": False,
        "blocked": {"disk_needed_gb": need, "disk_free_gb": free, "scaled_from": basis},
        "summary": summary,
        "note": args.note,
    }
    common.append_result("billion.jsonl", record)
    print(summary)


def _args() -> Any:
    p = common.parser(__doc__, default_size="1b")
    p.add_argument("--driver-memory", default="16g")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--mode", choices=("full", "incremental"), default="full")
    p.add_argument(
        "--daily-files", action="store_true", help="input files that each hold about one day"
    )
    p.add_argument("--files-per-batch", type=int, help="incremental: input files per batch")
    p.add_argument(
        "--time-limit", type=float, default=24 * 60, help="minutes before the run is stopped"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="incremental: go on with a stopped run (its committed batches are kept)",
    )
    args = p.parse_args()
    if args.resume and args.mode != "incremental":
        p.error("--resume goes on with an incremental run")
    return args


def _pieces_before(args: Any) -> list[dict[str, Any]]:
    """The records of the stopped pieces a resumed run goes on from, oldest first.

    Raises:
        SystemExit: The newest record of this run is not a stopped one.
    """
    layout = _layout(args.daily_files, args.files_per_batch)
    runs = [
        r
        for r in common.records("billion.jsonl")
        if r.get("size") == args.size
        and r.get("mode") == "incremental"
        and "blocked" not in r
        and _layout(r.get("daily_files"), r.get("files_per_batch")) == layout
    ]
    pieces: list[dict[str, Any]] = []
    for r in reversed(runs):
        if "stopped" not in r["incremental"]:
            break
        pieces.insert(0, r)
        if not r.get("resumed"):
            return pieces
    raise SystemExit("--resume: the newest record of this run is not a stopped one")


def main() -> None:
    args = _args()
    customers = args.customers or common.SIZES[args.size]
    t0 = time.monotonic()
    if args.daily_files:  # refuses to make the copy when it would not fit
        data = common.ensure_daily_files(customers)
    else:
        data = common.ensure_data(customers)
    generated_s = round(time.monotonic() - t0, 1)
    rows = _rows(data)
    work = common.DATA / f"billion-{customers}"
    pieces = _pieces_before(args) if args.resume else []
    if pieces and _commits(work) != pieces[-1]["incremental"].get("activity_commits"):
        raise SystemExit(f"--resume: {work} does not hold the stopped run's activity table")
    if args.mode == "incremental" and not fits_on_disk(args, customers, rows, work):
        return
    if not args.resume:
        shutil.rmtree(work, ignore_errors=True)
    logs = work / "eventlog"
    logs.mkdir(parents=True, exist_ok=True)
    logs_before = set(logs.iterdir())
    conf = {
        "spark.driver.memory": args.driver_memory,
        "spark.ui.enabled": "false",
        "spark.local.dir": str(work / "spark-local"),
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(logs),
        "spark.eventLog.compress": "false",
    }
    cmd = [sys.executable, "-m", "rfm_spark.cli", "segment", f"--{args.mode}"]
    cmd += ["--snapshot-date", common.END_DATE.isoformat(), "--input", str(data / "transactions")]
    cmd += ["--warehouse", str(work / "warehouse"), "--master", args.master]
    if args.files_per_batch:
        cmd += ["--files-per-batch", str(args.files_per_batch)]
    for k, v in conf.items():
        cmd += ["--spark-conf", f"{k}={v}"]
    waited = common.wait_quiet()
    print(f"segmenting {data.name} ({args.mode}) ...", flush=True)
    commits_before = _commits(work)
    header = common.header("benchmarks/billion.py")  # the code as the run starts
    run = watched_command(cmd, f"segment --{args.mode}", args.time_limit * 60)
    log = _event_files(set(logs.iterdir()) - logs_before)
    sums = totals(parse_event_log(log))
    result: dict[str, Any] = {**run, "event_log": sums}
    result["local_dir_left_gb"] = round(_size(work / "spark-local") / 2**30, 2)
    result["event_log_mb"] = round(_size(logs) / 2**20, 1)
    if args.mode == "incremental":
        result["activity_mb"] = round(
            _size(work / "warehouse" / "customer_day_activity") / 2**20, 1
        )
        result["activity_commits"] = _commits(work)
    record = {
        **header,
        "size": args.size,
        "mode": args.mode,
        **_layout(args.daily_files, args.files_per_batch),
        "customers": customers,
        "transactions": rows,
        "master": args.master,
        "conf": {k: v for k, v in conf.items() if not k.startswith("spark.eventLog")}
        | {"spark.local.dir": "(the benchmark's own folder)"},
        "generated_s": generated_s,
        "waited_s": waited,
        args.mode: result,
        "completed": "stopped" not in run,
        "summary": _summary(args, rows, customers, result, pieces),
        "note": args.note,
    }
    if args.resume:
        record |= {"resumed": True, "activity_commits_before": commits_before}
    common.append_result("billion.jsonl", record)
    print(record["summary"])
    print(f"steps: {run['steps']}\nevent log totals: {sums}")
    shutil.rmtree(work / "spark-local", ignore_errors=True)


def _summary(
    args: Any, rows: int, customers: int, run: dict[str, Any], pieces: list[dict[str, Any]]
) -> str:
    what = "full run" if args.mode == "full" else "first incremental run"
    if "stopped" in run:
        what += f" (stopped: {run['stopped']}, {run.get('activity_commits', 0)} activity commits)"
    wall = f"{run['wall_s']:.0f} s"
    if pieces:
        total = run["wall_s"] + sum(p["incremental"]["wall_s"] for p in pieces)
        wall = f"{total:.0f} s in {len(pieces) + 1} pieces (resumed after a stop; this one {wall})"
    peak, used = run["peak_mb"], run["event_log"]
    return (
        f"{what} of {rows:,} rows ({customers:,} customers): {wall}, peak "
        f"{peak.get('python_mb', 0) + peak.get('jvm_mb', 0):,.0f} MB, "
        f"spill {used['spill_mb'] / 1024:.1f} GB, disk {peak.get('disk_mb', 0) / 1024:.1f} GB"
    )


def _event_files(new: set[Path]) -> list[Path]:
    """The event log files of a run, in order: a rolling log is a folder of events_N_* files."""
    files = [f for d in new for f in ([d] if d.is_file() else d.rglob("*")) if f.is_file()]

    def order(f: Path) -> tuple[str, int]:
        n = re.match(r"events_(\d+)_", f.name)
        return str(f.parent), int(n.group(1)) if n else 0

    return sorted((f for f in files if "appstatus" not in f.name), key=order)


def _commits(work: Path) -> int:
    return len(list((work / "warehouse" / "customer_day_activity" / "_delta_log").glob("*.json")))


def _rows(data: Path) -> int:
    """Transaction rows of a data set: as generated, or from the Parquet footers."""
    generated = data / "_generated.json"
    if generated.exists():
        return int(json.loads(generated.read_text())["written"]["transactions"])
    import pyarrow.dataset as ds

    return int(ds.dataset(data / "transactions", format="parquet").count_rows())


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


if __name__ == "__main__":
    main()
