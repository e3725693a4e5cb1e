"""Crash safety of the delta-rs writes: a run killed with SIGKILL at any moment leaves the table at
its previous version (or, once committed, at the new complete one), and the next run succeeds and
removes the killed run's leftovers.

The slow tests run the real CLI in a child process and kill it at exact points with the
``RFM_SPARK_FAULT`` hook of :mod:`rfm_spark.io.deltars.staging`, or from the outside while Spark writes.
Every table is read back with ``deltalake``, independent of Spark.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pytest
from _procs import fast_jvm_env, kill_group, runs_by_date, segment_command, segment_here
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.io.deltars import DeltaRsStore
from rfm_spark.io.deltars import staging as deltars_staging

D1 = "2026-10-01"
D2 = "2026-10-15"
TABLE = "customer_segments"
KILLED = "removed leftovers of a killed write"


# ---- helpers --------------------------------------------------------------------------------


def start(
    demo: Path, warehouse: Path, day: str, *, fault: str | None = None
) -> subprocess.Popen[str]:
    """``rfm-spark segment`` in its own process group (so that it can be killed as a whole)."""
    env = {k: v for k, v in os.environ.items() if k != deltars_staging.FAULT_ENV}
    if fault:
        env[deltars_staging.FAULT_ENV] = fault
    env = fast_jvm_env(env)
    cmd = segment_command(demo, warehouse, day, backend="delta-rs")
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Exit code and stderr. The JVM (same process group) is killed too once Python is gone."""
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.returncode is not None and proc.returncode < 0:
            kill_group(proc)
    return proc.returncode, err


def run_id_of(stderr: str) -> str:
    found = re.search(r"\brun (\d{8}T\d{6}Z-[0-9a-f]+)\b", stderr)
    assert found, f"no run id on stderr: {stderr[-2000:]}"
    return found.group(1)


def rows_of(root: Path, day: str) -> int:
    df = DeltaTable(str(root)).to_pandas(columns=["snapshot_date"])
    return int((df["snapshot_date"].astype(str) == day).sum())


def referenced_files(root: Path) -> set[str]:
    """Relative paths of the data files any version of the table references."""
    latest = DeltaTable(str(root)).version()
    out: set[str] = set()
    for version in range(latest + 1):
        actions = pa.table(DeltaTable(str(root), version=version).get_add_actions(flatten=False))
        out |= {unquote(p) for p in actions.column("path").to_pylist()}
    return out


def parquet_on_disk(root: Path) -> set[str]:
    """Parquet files in the table folder (the partition folders; not _staging, _delta_log)."""
    files = (p.relative_to(root) for p in root.rglob("*.parquet"))
    return {p.as_posix() for p in files if not p.parts[0].startswith("_")}


def assert_clean(root: Path) -> None:
    """No staging folder, and no Parquet file in the table folder that the log does not know."""
    assert not (root / deltars_staging.STAGING_DIR).exists(), list(root.rglob("*"))
    assert parquet_on_disk(root) == referenced_files(root)


# ---- the killed runs and their reruns --------------------------------------------------------

# kill point -> (date of the killed run, date of the run after it). A rerun of an existing date
# is the telling case: a partial replace would show rows of two runs in one partition.
SCENARIOS = {
    "staged": (D2, D2),  # hook: Spark wrote the staging files of a new date, nothing moved yet
    "spark-writing": (D1, D1),  # SIGKILL from outside while Spark writes the Parquet files
    "moved": (D1, D1),  # hook: all files moved into the partition folder, not committed
    "committed": (D1, D2),  # hook: the commit is in the log, cleanup and checks not done
}
OUTSIDE = "spark-writing"


@dataclass(frozen=True)
class Observed:
    """The table as ``deltalake`` reads it, and what lies on disk, at one moment."""

    version: int
    runs: dict[str, set[str]]  # snapshot_date -> run ids of its rows
    rows_d1: int
    untracked: set[str]  # Parquet files in the partition folders that no version references
    staging: list[str]  # entries of <table>/_staging
    staging_gone: bool


def observe(root: Path) -> Observed:
    staging = root / deltars_staging.STAGING_DIR
    return Observed(
        version=DeltaTable(str(root)).version(),
        runs=runs_by_date(root),
        rows_d1=rows_of(root, D1),
        untracked=parquet_on_disk(root) - referenced_files(root),
        staging=sorted(p.name for p in staging.iterdir()) if staging.exists() else [],
        staging_gone=not staging.exists(),
    )


@dataclass
class Crash:
    day: str
    rerun_day: str
    code: int = 0
    err: str = ""
    caught: bool = True  # the outside kill saw Spark writing
    after_kill: Observed | None = None
    rerun_code: int = 0
    rerun_err: str = ""
    after_rerun: Observed | None = None


def wait_for_spark_writing(root: Path, proc: subprocess.Popen[str], timeout: float) -> bool:
    """Poll until Spark's output committer has a ``_temporary`` folder or a part file in the
    staging folder (the Parquet write is under way); False if the run ended first."""
    staging = root / deltars_staging.STAGING_DIR
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for data in staging.glob(f"*/{deltars_staging.STAGED_DATA}"):
            if (data / "_temporary").exists() or any(data.rglob("part-*")):
                return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def baseline(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """A warehouse whose table holds one snapshot of D1 (version 0): path, run id, rows."""
    warehouse = tmp_path_factory.mktemp("crash-baseline")
    segment_here(demo, warehouse, D1, backend="delta-rs")
    root = warehouse / TABLE
    assert DeltaTable(str(root)).version() == 0
    runs = runs_by_date(root)
    assert list(runs) == [D1] and len(runs[D1]) == 1
    (run_id,) = runs[D1]
    assert_clean(root)
    return warehouse, run_id, rows_of(root, D1)


@pytest.fixture(scope="module")
def crashes(
    demo: Path, baseline: tuple[Path, str, int], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Crash]:
    """Every scenario on its own copy of the baseline: the killed runs all at once, then the
    reruns all at once (independent processes, as concurrent jobs are; it halves the time)."""
    roots: dict[str, Path] = {}
    for name in SCENARIOS:
        roots[name] = tmp_path_factory.mktemp(f"crash-{name}")
        shutil.rmtree(roots[name])
        shutil.copytree(baseline[0], roots[name])
    out = {name: Crash(day, rerun_day) for name, (day, rerun_day) in SCENARIOS.items()}
    procs = {
        name: start(demo, roots[name], c.day, fault=None if name == OUTSIDE else name)
        for name, c in out.items()
    }
    try:
        out[OUTSIDE].caught = wait_for_spark_writing(roots[OUTSIDE] / TABLE, procs[OUTSIDE], 600)
    finally:
        kill_group(procs[OUTSIDE])  # SIGKILL to Python and its JVM (one process group)
    for name, proc in procs.items():
        out[name].code, out[name].err = finish(proc)
        out[name].after_kill = observe(roots[name] / TABLE)
    procs = {name: start(demo, roots[name], c.rerun_day) for name, c in out.items()}
    for name, proc in procs.items():
        out[name].rerun_code, out[name].rerun_err = finish(proc)
        if out[name].rerun_code == 0:
            out[name].after_rerun = observe(roots[name] / TABLE)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SCENARIOS))
def test_killed_run_leaves_no_partial_snapshot(
    crashes: dict[str, Crash], baseline: tuple[Path, str, int], point: str
) -> None:
    crash = crashes[point]
    _, first_run, first_rows = baseline
    assert crash.caught, "the run ended before its Parquet write was seen"
    assert crash.code == -signal.SIGKILL, (crash.code, crash.err[-3000:])
    killed = run_id_of(crash.err)
    seen = crash.after_kill
    assert seen is not None
    assert seen.rows_d1 == first_rows
    assert seen.staging  # the killed run had no chance to clean up
    if point == "committed":
        # the commit landed: the new snapshot is there as a whole, none of the old one
        assert (seen.version, seen.runs) == (1, {D1: {killed}})
        assert not seen.untracked
    else:
        assert (seen.version, seen.runs) == (0, {D1: {first_run}})  # no row of the killed run
        if point == "moved":  # on disk, but no version references them
            assert seen.untracked
            assert all(p.startswith(f"snapshot_date={crash.day}/") for p in seen.untracked)
        else:
            assert not seen.untracked


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SCENARIOS))
def test_next_run_succeeds_and_removes_the_leftovers(
    crashes: dict[str, Crash], baseline: tuple[Path, str, int], point: str
) -> None:
    crash = crashes[point]
    _, first_run, first_rows = baseline
    assert crash.rerun_code == 0, crash.rerun_err[-3000:]
    assert KILLED in crash.rerun_err  # by this run, not hours later
    rerun = run_id_of(crash.rerun_err)
    seen = crash.after_rerun
    assert seen is not None
    expected = {D1: {first_run}, D2: {rerun}} if point == "staged" else {D1: {rerun}}
    if point == "committed":
        expected = {D1: {run_id_of(crash.err)}, D2: {rerun}}
    assert seen.runs == expected
    assert seen.version == (2 if point == "committed" else 1)
    assert seen.rows_d1 == first_rows
    assert seen.staging_gone and not seen.untracked  # committed files were kept, all others gone


# ---- the cleanup rule, in process -----------------------------------------------------------


def _dead_process() -> dict[str, int | None]:
    """pid and start time of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE, text=True)
    stat = deltars_staging.proc_stat(proc.pid)
    proc.communicate("\n")
    return {"pid": proc.pid, "start": stat[1] if stat else None}


def _fake_staging(
    root: Path, write_id: str, owner: dict | None, manifest: list[str] | None = None
) -> Path:
    folder = root / deltars_staging.STAGING_DIR / write_id
    part = folder / deltars_staging.STAGED_DATA / "snapshot_date=2024-02-14"
    part.mkdir(parents=True)
    (part / "part-00000-x.c000.snappy.parquet").write_bytes(b"x")
    if owner is not None:
        (folder / deltars_staging.OWNER_FILE).write_text(
            json.dumps({**owner, "write_id": write_id})
        )
    if manifest is not None:
        (folder / deltars_staging.MANIFEST_FILE).write_text(json.dumps({"files": manifest}))
    return folder


def test_leftovers_of_dead_writers_go_and_running_writers_stay(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DeltaRsStore(spark)
    root = tmp_path / "t"
    schema = T.StructType([T.StructField("customer_id", T.LongType())])

    def write(day: datetime.date) -> int:
        df = spark.createDataFrame([(1,), (2,)], schema).withColumn("snapshot_date", F.lit(day))
        return store.write_partition(
            df, str(root), partition_column="snapshot_date", partition_value=day
        )

    write(datetime.date(2024, 1, 31))
    committed_id = store._commits(str(root))[0].write_id
    assert committed_id
    committed_files = sorted(referenced_files(root))
    me = deltars_staging.owner_record("x")
    dead = {**me, **_dead_process()}

    running = _fake_staging(root, "running", me)
    reused = _fake_staging(root, "reused-pid", {**me, "start": (me["start"] or 0) + 1})
    elsewhere = _fake_staging(root, "other-host", {**me, "host": "another-machine"})
    no_owner = _fake_staging(root, "no-owner", None)  # e.g. a writer that just started
    uncommitted = "snapshot_date=2024-01-31/part-00000-killed-write-a.c000.snappy.parquet"
    (root / uncommitted).write_bytes(b"moved, never committed")
    (tmp_path / "outside.parquet").write_bytes(b"not the table's")
    killed = _fake_staging(
        root, "killed-write", dead, [uncommitted, "snapshot_date=2024-01-31/gone.parquet"]
    )
    escaping = _fake_staging(root, "escaping", dead, ["../outside.parquet"])
    # a write killed after its commit: its files are the table's now and must stay
    after_commit = _fake_staging(root, committed_id, dead, committed_files)

    with caplog.at_level(logging.WARNING, logger="rfm_spark.io.deltars.staging"):
        assert write(datetime.date(2024, 2, 14)) == 1

    gone = [p for p in (reused, killed, escaping, after_commit) if p.exists()]
    assert not gone
    assert running.exists() and elsewhere.exists() and no_owner.exists()
    assert not (root / uncommitted).exists()
    assert (tmp_path / "outside.parquet").exists()
    assert set(committed_files) <= parquet_on_disk(root)
    assert DeltaTable(str(root)).to_pandas()["customer_id"].tolist().count(1) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum(KILLED in m for m in messages) == 4, messages
    assert any("killed-write" in m and "1 moved but uncommitted" in m for m in messages), messages
    assert any(committed_id in m and "commit is in the log" in m for m in messages), messages

    # a folder whose writer cannot be checked goes once nothing in it changed for 6 hours
    old = time.time() - 7 * 3600
    for folder in (no_owner, *no_owner.rglob("*")):
        os.utime(folder, (old, old))
    write(datetime.date(2024, 2, 14))
    assert not no_owner.exists() and running.exists() and elsewhere.exists()
