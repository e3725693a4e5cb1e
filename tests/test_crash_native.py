"""Crash safety of native Delta writes (the Delta Lake connector): a run killed with SIGKILL at any
moment leaves the table at its last version, readers never see part of a snapshot, and a rerun
succeeds.

The real CLI runs in a child process (its own process group, so Python and its JVM die together)
and is killed from the outside at moments seen on disk: while Spark writes the new snapshot's
data files, and right after the commit file appeared. Tables are read back with ``deltalake``
and with this process's Spark session.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from _procs import fast_jvm_env, kill_group, runs_by_date, segment_command, segment_here
from deltalake import DeltaTable
from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

D1 = "2026-10-01"
D2 = "2026-10-15"
TABLE = "customer_segments"


def start(demo: Path, warehouse: Path, day: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        segment_command(demo, warehouse, day),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=fast_jvm_env(),
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        kill_group(proc)  # a JVM left behind by a killed Python
    return proc.returncode, err


def data_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")}


def writing(root: Path, before: set[str]) -> bool:
    """A data file of the new write exists (Spark opened it; it may still be empty)."""
    return bool(data_files(root) - before)


def committed(root: Path, version: int) -> bool:
    return (root / "_delta_log" / f"{version:020d}.json").exists()


@dataclass
class Crash:
    root: Path
    caught: bool = False  # the moment was seen before the run ended
    code: int = 0
    version: int = -1
    runs: dict[str, set[str]] | None = None
    rerun_code: int = 0
    rerun_err: str = ""
    rerun_version: int = -1
    rerun_runs: dict[str, set[str]] | None = None


def kill_each_when(
    procs: dict[str, subprocess.Popen[str]],
    seen: dict[str, Callable[[], bool]],
    timeout: float = 600,
) -> dict[str, bool]:
    """SIGKILL each process the moment its condition holds (watching them all at once).

    Returns:
        For each, whether its moment was seen before it ended (it is killed either way).
    """
    caught = dict.fromkeys(procs, False)
    live = set(procs)
    deadline = time.monotonic() + timeout
    try:
        while live and time.monotonic() < deadline:
            for name in list(live):
                if seen[name]():
                    caught[name] = True
                elif procs[name].poll() is None:
                    continue
                kill_group(procs[name])
                live.discard(name)
            time.sleep(0.005)
    finally:
        for proc in procs.values():
            kill_group(proc)
    return caught


@pytest.fixture(scope="module")
def baseline(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A warehouse whose table holds one snapshot of D1 at version 0; its run ids."""
    warehouse = tmp_path_factory.mktemp("native-baseline")
    segment_here(demo, warehouse, D1)
    runs = runs_by_date(warehouse / TABLE)
    assert DeltaTable(str(warehouse / TABLE)).version() == 0 and list(runs) == [D1]
    return warehouse, runs[D1]


# moment -> (date the killed run writes, date of the rerun). Rewriting D1 is the telling case:
# a partial replace would leave rows of two runs in one partition.
MOMENTS = {"writing-files": (D1, D1), "just-committed": (D2, D1)}


@pytest.fixture(scope="module")
def crashes(
    demo: Path, baseline: tuple[Path, set[str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Crash]:
    """Each moment on its own copy of the baseline: the runs to kill all at once, each killed
    when its moment is seen on disk, then the reruns all at once (independent processes, as
    concurrent jobs are; the children run on one core each, so this nearly halves the time)."""
    out: dict[str, Crash] = {}
    procs: dict[str, subprocess.Popen[str]] = {}
    seen: dict[str, Callable[[], bool]] = {}
    for moment, (day, _) in MOMENTS.items():
        warehouse = tmp_path_factory.mktemp(f"native-{moment}")
        shutil.rmtree(warehouse)
        shutil.copytree(baseline[0], warehouse)
        root = warehouse / TABLE
        before = data_files(root)
        out[moment] = Crash(root)
        procs[moment] = start(demo, warehouse, day)
        if moment == "writing-files":
            seen[moment] = lambda root=root, before=before: writing(root, before)
        else:
            seen[moment] = lambda root=root: committed(root, 1)
    caught = kill_each_when(procs, seen)
    for moment, crash in out.items():
        crash.caught = caught[moment]
        crash.code, _ = finish(procs[moment])
        crash.version = DeltaTable(str(crash.root)).version()
        crash.runs = runs_by_date(crash.root)
    reruns = {m: start(demo, out[m].root.parent, rerun) for m, (_, rerun) in MOMENTS.items()}
    for moment, crash in out.items():
        crash.rerun_code, crash.rerun_err = finish(reruns[moment])
        if crash.rerun_code == 0:
            crash.rerun_version = DeltaTable(str(crash.root)).version()
            crash.rerun_runs = runs_by_date(crash.root)
    return out


def test_killed_while_writing_files_leaves_the_last_version(
    crashes: dict[str, Crash], baseline: tuple[Path, set[str]], spark: SparkSession
) -> None:
    crash = crashes["writing-files"]
    assert crash.caught, "the run ended before a data file of its write was seen"
    assert crash.code == -signal.SIGKILL
    assert crash.version == 0 and crash.runs == {D1: baseline[1]}  # none of the killed run's rows
    assert crash.rerun_code == 0, crash.rerun_err[-3000:]
    assert crash.rerun_version == 1
    assert crash.rerun_runs is not None and list(crash.rerun_runs) == [D1]
    assert len(crash.rerun_runs[D1]) == 1 and crash.rerun_runs[D1] != baseline[1]


def test_killed_right_after_the_commit_keeps_the_whole_snapshot(
    crashes: dict[str, Crash], baseline: tuple[Path, set[str]]
) -> None:
    crash = crashes["just-committed"]
    assert crash.caught, "the run ended before its commit was seen"
    assert crash.code == -signal.SIGKILL
    assert crash.version == 1 and crash.runs is not None
    assert crash.runs[D1] == baseline[1] and len(crash.runs[D2]) == 1  # the new one, whole
    assert crash.rerun_code == 0, crash.rerun_err[-3000:]
    assert crash.rerun_version == 2 and crash.rerun_runs is not None
    assert crash.rerun_runs[D2] == crash.runs[D2] and crash.rerun_runs[D1] != baseline[1]


def test_spark_reads_the_same_after_a_kill(crashes: dict[str, Crash], spark: SparkSession) -> None:
    """The connector (this session) reads exactly what deltalake reads: no file of the killed
    write shows up in a query."""
    for moment, crash in crashes.items():
        rows = spark.read.format("delta").load(str(crash.root)).select("snapshot_date", "run_id")
        seen: dict[str, set[str]] = {}
        for r in rows.distinct().collect():
            seen.setdefault(str(r["snapshot_date"]), set()).add(r["run_id"])
        assert seen == crash.rerun_runs, moment
