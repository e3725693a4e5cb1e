"""Real `rfm-spark segment` processes for the concurrency and crash tests."""

from __future__ import annotations

import atexit
import contextlib
import csv
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

# short JVM runs: the client compiler only and a serial GC take about a third less time
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"


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


def segment_command(demo: Path, warehouse: Path, day: str) -> list[str]:
    """The CLI segmenting the demo transactions as of ``day`` on one core."""
    return cli_command(
        "segment",
        "--snapshot-date",
        day,
        "--input",
        str(demo / "transactions"),
        warehouse=str(warehouse),
    )


def segment_here(demo: Path, warehouse: Path, day: str) -> None:
    """The same segment run as :func:`segment_command`, in this process (the test session):
    a table for the killed children to start from, without the start of another JVM."""
    from rfm_spark.cli import main

    cmd = segment_command(demo, warehouse, day)
    args = cmd[cmd.index("rfm_spark.cli") + 1 :]
    assert main([*args, "--quiet"]) == 0


def fast_jvm_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the short-run JVM options added, and the class
    archive of :func:`class_archive` mapped when there is one."""
    env = dict(os.environ if env is None else env)
    archive = class_archive()
    # a child whose class path does not start with the archived one (spark-submit's launcher)
    # loads its classes as usual; QUIET_CDS keeps the JVM's notices off the child's stdout
    share = f" -XX:SharedArchiveFile={archive} {QUIET_CDS}"
    options = f"{env.get('JAVA_TOOL_OPTIONS', '')} {FAST_JVM}{share if archive else ''}"
    env["JAVA_TOOL_OPTIONS"] = options.strip()
    return env


class _ClassArchive:
    """A class data sharing archive of the classes a segment run loads, made once per test
    session by a child run over a few rows (``-XX:ArchiveClassesAtExit``).

    A child JVM that maps it skips loading and verifying those classes again: a cold segment
    run of the demo data takes about 9 s instead of 14. Making it takes a run of about 28 s
    (the archive is written at exit), so conftest starts it in the background as soon as the
    collected tests include any that start children.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rfm-spark-jvm-"))
        self.path = self.folder / "segment.jsa"
        data = self.folder / "input"
        data.mkdir()
        with (data / "rows.csv").open("w", newline="") as f:
            csv.writer(f).writerows(
                [["customer_id", "order_id", "order_ts", "amount"]]
                + [[f"c{i}", f"o{i}", f"2026-01-{i + 1:02d} 10:00:00", "9.99"] for i in range(20)]
            )
        cmd = cli_command(
            *("segment", "--snapshot-date", "2026-02-01", "--input", str(data)),
            *("--input-format", "csv", "--quiet"),
            warehouse=str(self.folder / "warehouse"),
        )
        env = dict(os.environ)
        dump = f"-XX:ArchiveClassesAtExit={self.path} {QUIET_CDS}"
        env["JAVA_TOOL_OPTIONS"] = f"{env.get('JAVA_TOOL_OPTIONS', '')} {FAST_JVM} {dump}"
        self.log = (self.folder / "run.log").open("w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        atexit.register(self.remove)

    def wait(self) -> Path | None:
        """The archive once made; None (after a warning) if the run failed."""
        try:
            code = self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            code = None  # stopped at exit; the children start without it
        if code != 0 or not self.path.exists():
            self.log.flush()
            log = (self.folder / "run.log").read_text()[-1500:]
            warnings.warn(f"child JVMs start without a class archive: {log}", stacklevel=3)
            return None
        return self.path

    def remove(self) -> None:
        if self.proc.poll() is None:  # still making it (a short session): stop it
            kill_group(self.proc)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@functools.cache
def start_class_archive() -> _ClassArchive:
    """Start making the class archive of the child JVMs (once; conftest calls it)."""
    return _ClassArchive()


@functools.cache
def class_archive() -> Path | None:
    """The class archive the child JVMs map, made (or waited for) on first use."""
    return start_class_archive().wait()


def kill_group(proc: subprocess.Popen[Any]) -> None:
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
