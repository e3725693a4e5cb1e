"""Helpers shared by the benchmark scripts: data sizes, the quiet-machine gate, peak memory,
machine facts and the cached generated data."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _use_code_snapshot() -> None:
    """With ``RFM_BENCH_CODE=DIR``, import ``rfm_spark`` from ``DIR`` instead of the editable
    install, to measure a fixed commit while the working tree changes (RESULTS.md: ``git
    archive <commit> rfm_spark`` exported there). The snapshot finds the jars of this checkout (its
    ``.jars/``, through ``RFM_SPARK_JARS_DIR``), not the user cache: without them it would
    measure the delta-rs fallback instead of the Delta connector."""
    code = os.environ.get("RFM_BENCH_CODE")
    if not code:
        return
    jars = Path(__file__).resolve().parent.parent / ".jars"
    if jars.is_dir():
        os.environ.setdefault("RFM_SPARK_JARS_DIR", str(jars))
    sys.path.insert(0, code)
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]


_use_code_snapshot()


def child_process() -> dict[str, Any]:
    """``subprocess`` options for a child command that imports the same ``rfm_spark`` as this
    process: with a code snapshot, the snapshot first on ``PYTHONPATH`` and its folder as the
    working folder (``python -m`` and ``python -c`` put the working folder first on the path,
    so from this checkout they would import its package, not the snapshot's)."""
    env = dict(os.environ)
    code = os.environ.get("RFM_BENCH_CODE")
    if code:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH")) if p)
    return {"env": env, "cwd": code or None}


HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"
END_DATE = dt.date(2026, 11, 23)  # first day after the generated period = the snapshot date
DAYS = 730
SEED = 42
# The generator makes ~19.65 rows per customer and year (786,187 rows for 20,000 customers
# over 730 days), so these give about 10M, 30M and 100M transaction rows over two years; the
# 365-day window of a snapshot holds about half of them.
SIZES = {"1m": 25_450, "10m": 254_500, "30m": 763_500, "100m": 2_545_000, "1b": 25_450_000}
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "8g",
    "spark.ui.enabled": "false",
}


# Bumped when the generator's output changes, so that a cached data set of an older generator
# is not reused (g2: every row has a line number, no two rows are identical).
GENERATOR = "g2"


def data_dir(customers: int, days: int = DAYS) -> Path:
    return DATA / f"c{customers}-d{days}-{GENERATOR}"


def ensure_data(customers: int, days: int = DAYS) -> Path:
    """Generate the data set once (cached on disk) in a child process; return its folder."""
    out = data_dir(customers, days)
    if (out / "transactions" / "_SUCCESS").exists():
        return out
    code = (
        "import datetime as dt, sys\n"
        "from rfm_spark.config import SparkSettings\n"
        "from rfm_spark.io.demo_data import generate\n"
        "from rfm_spark.session import build_spark\n"
        "spark = build_spark(SparkSettings(master='local[2]', conf={"
        "'spark.driver.memory': '8g', 'spark.ui.enabled': 'false'}), quiet=True)\n"
        f"s = generate(spark, {str(out)!r}, customers={customers}, days={days}, "
        f"end_date=dt.date.fromisoformat({END_DATE.isoformat()!r}), seed={SEED})\n"
        "print(s.transactions)\n"
    )
    print(f"generating {out} ...", flush=True)
    subprocess.run([sys.executable, "-c", code], check=True, **child_process())
    return out


def ensure_daily_files(customers: int, days: int = DAYS) -> Path:
    """A copy of a data set's transactions as files that each hold about one day, in order
    (as a daily feed delivers them): Spark's range partitioning on the order time, one file per
    day, file modification times in day order (the order a file source reads them in).
    Made once in a child process (from the data set, generated first if need be; once the
    copy exists the data set may be deleted); returns the copy's folder."""
    out = Path(f"{data_dir(customers, days)}-daily")
    tx = out / "transactions"
    if not (tx / "_SUCCESS").exists():
        data = ensure_data(customers, days)
        size = sum(f.stat().st_size for f in (data / "transactions").rglob("*") if f.is_file())
        free = shutil.disk_usage(DATA).free
        if free < 3 * size:  # the copy, and a shuffle of the whole input to make it
            raise SystemExit(
                f"laying out {data.name} by day needs about {3 * size / 2**30:.0f} GB of disk "
                f"(the copy and its shuffle), {free / 2**30:.0f} GB free"
            )
        _write_daily_files(data, tx)
    parts = sorted(tx.glob("part-*.parquet"))  # part numbers follow the ranges' order
    start = time.time() - len(parts)
    for i, part in enumerate(parts):
        os.utime(part, (start + i, start + i))
    return out


def _write_daily_files(data: Path, tx: Path) -> None:
    code = (
        "from rfm_spark.config import SparkSettings\n"
        "from rfm_spark.session import build_spark\n"
        "spark = build_spark(SparkSettings(master='local[2]', conf={"
        "'spark.driver.memory': '8g', 'spark.ui.enabled': 'false', "
        f"'spark.local.dir': {str(tx.parent / 'spark-local')!r}}}), quiet=True)\n"
        f"df = spark.read.parquet({str(data / 'transactions')!r})\n"
        f"df.repartitionByRange({DAYS}, 'order_ts').sortWithinPartitions('order_ts')"
        f".write.mode('overwrite').parquet({str(tx)!r})\n"
    )
    print(f"laying out {data.name} as daily files in {tx} ...", flush=True)
    subprocess.run([sys.executable, "-c", code], check=True, **child_process())
    shutil.rmtree(tx.parent / "spark-local", ignore_errors=True)


def pytest_running() -> bool:
    """True while any process has ``pytest`` in its command line (a test run sharing the machine)."""
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"pytest" in cmd:
            return True
    return False


def wait_quiet(poll_s: float = 10.0) -> float:
    """Wait until no pytest runs on the machine; return the seconds waited."""
    t0 = time.monotonic()
    announced = False
    while pytest_running():
        if not announced:
            print("  waiting for a running pytest to finish ...", flush=True)
            announced = True
        time.sleep(poll_s)
    return round(time.monotonic() - t0, 1)


def load1() -> float:
    return os.getloadavg()[0]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(pid))
    return kids


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def java_descendants(root: int | None = None) -> list[int]:
    """Pids of the java processes below ``root`` (this process by default): the Spark driver."""
    kids = _children()
    out, todo = [], [root or os.getpid()]
    while todo:
        pid = todo.pop()
        for k in kids.get(pid, []):
            todo.append(k)
            try:
                if Path(f"/proc/{k}/comm").read_text().strip() == "java":
                    out.append(k)
            except OSError:
                pass
    return out


def local_session() -> Any:
    """A Spark session as the product builds it, ``local[2]`` with :data:`SPARK_CONF` (for
    preparing data sets; the timed runs are cold commands)."""
    from rfm_spark.config import SparkSettings
    from rfm_spark.session import build_spark

    return build_spark(SparkSettings(master="local[2]", conf=SPARK_CONF), quiet=True)


def peak_memory_mb(pid: int | None = None) -> dict[str, float]:
    """Peak RSS (VmHWM) of a Python process (this one by default) and of its java children
    (the Spark driver JVM, which in local mode also runs the executors), in MiB."""
    pid = pid or os.getpid()
    py = _status_kb(pid, "VmHWM") / 1024
    jvm = sum(_status_kb(p, "VmHWM") for p in java_descendants(pid)) / 1024
    return {"python_mb": round(py, 1), "jvm_mb": round(jvm, 1), "total_mb": round(py + jvm, 1)}


def machine() -> dict[str, Any]:
    import duckdb
    import pandas
    import pyarrow
    import pyspark

    import rfm_spark
    from rfm_spark import __version__

    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB",
        "python": platform.python_version(),
        "java": java.splitlines()[0] if java else "",
        "rfm_spark": __version__,
        "rfm_spark_code": _code_version(Path(rfm_spark.__file__).parent),
        "pyspark": pyspark.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _code_version(package: Path) -> str:
    """The commit the measured code is (``-dirty`` with uncommitted changes), never a path."""
    snapshot = os.environ.get("RFM_BENCH_CODE")
    if snapshot:
        return f"commit {Path(snapshot).name.removeprefix('code-')}"
    git = ["git", "-C", str(package.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "rfm_spark"], capture_output=True, text=True
    )
    return f"commit {head.stdout.strip()}" + ("-dirty" if dirty.stdout.strip() else "")


_STEP = re.compile(
    r"^(?:\S+ \S+ )?\[(?P<command>[a-z]+)\] (?P<label>.+): done in (?P<s>[0-9.]+) s$"
)


def cold_command(cmd: list[str], what: str) -> dict[str, Any]:
    """Run one CLI command as a user would (Python and JVM start included): its wall time, the
    step times from its progress lines, and the 1-minute load when it started."""
    load = load1()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, **child_process())
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed: {proc.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "steps": step_times(progress_steps(proc.stderr)),
        "load1_start": load,
    }


def progress_steps(stderr: str) -> dict[str, float]:
    """The step times a command printed (``[segment] reading ...: done in 12.3 s``)."""
    timings = {}
    for line in stderr.splitlines():
        m = _STEP.match(line.strip())
        if m:
            timings[m["label"]] = float(m["s"])
    return timings


def step_times(timings: dict[str, float]) -> dict[str, float]:
    """A run's step times keyed by the step without the table it read or wrote (no paths)."""
    return {
        re.split(r" (?:to|into) (?=\S*[/:])| \(", label)[0]: secs for label, secs in timings.items()
    }


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def parser(doc: str | None, default_size: str) -> argparse.ArgumentParser:
    """The options every benchmark script shares: ``--size``/``--customers`` (the data set)
    and ``--note``; each script adds its own."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", choices=sorted(SIZES), default=default_size)
    p.add_argument("--customers", type=int, help="overrides --size")
    p.add_argument("--note", default="", help="free text recorded with the results")
    return p


def header(script: str) -> dict[str, Any]:
    """The start of every results record: when, on what machine and versions, by which script."""
    return {"date": now(), **machine(), "script": script}


def records(name: str) -> list[dict[str, Any]]:
    """The records of ``results/NAME``, oldest first (none when it does not exist)."""
    path = RESULTS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest(name: str, where: Callable[[dict[str, Any]], bool] = lambda r: True) -> dict | None:
    """The newest record of ``results/NAME`` that ``where`` accepts (None without one)."""
    matching = [r for r in records(name) if where(r)]
    return matching[-1] if matching else None


def append_result(name: str, record: dict[str, Any]) -> None:
    """Append one JSON line to ``benchmarks/results/<name>``."""
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / name).open("a") as f:
        f.write(json.dumps(record) + "\n")


def run_worker(args: list[str], what: str) -> dict[str, Any]:
    """Run ``python <args>`` (a script's ``--worker`` mode) in a fresh process and return the
    JSON record it prints last; its progress on stderr passes through."""
    proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    record: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return record
