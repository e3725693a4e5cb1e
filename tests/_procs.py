"""Real `rfm-spark segment` processes for the concurrency and crash tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable

# short JVM runs: the client compiler only and a serial GC take about a third less time
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def cli_command(*args: str, warehouse: str) -> list[str]:
    """``rfm-spark ARGS`` on one core with two shuffle partitions and no UI, as a real process."""
    return [
        sys.executable,
        "-m",
        "rfm_spark.cli",
        *args,
        "--warehouse",
        warehouse,
        "--master",
        "local[1]",
        "--spark-conf",
        "spark.sql.shuffle.partitions=2",
        "--spark-conf",
        "spark.ui.enabled=false",
    ]


def segment_command(demo: Path, warehouse: Path, day: str, *, backend: str = "auto") -> list[str]:
    """The CLI segmenting the demo transactions as of ``day`` on one core."""
    return cli_command(
        "segment",
        "--snapshot-date",
        day,
        "--input",
        str(demo / "transactions"),
        "--backend",
        backend,
        warehouse=str(warehouse),
    )


def fast_jvm_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the short-run JVM options added."""
    env = dict(os.environ if env is None else env)
    env["JAVA_TOOL_OPTIONS"] = f"{env.get('JAVA_TOOL_OPTIONS', '')} {FAST_JVM}".strip()
    return env


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything it started
    (Python and its JVM)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def runs_by_date(root: Path) -> dict[str, set[str]]:
    """snapshot_date -> run ids of its rows, read with deltalake; every partition whole (each
    customer once)."""
    df = DeltaTable(str(root)).to_pandas(columns=["snapshot_date", "run_id", "customer_id"])
    out: dict[str, set[str]] = {}
    for day, part in df.groupby(df["snapshot_date"].astype(str)):
        assert part["customer_id"].is_unique, day
        out[str(day)] = set(part["run_id"])
    return out
