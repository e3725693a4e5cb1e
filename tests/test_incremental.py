"""Incremental runs: the snapshot made from the activity table equals the full recompute.

Input arrives as CSV files in one folder, in any order: rows for past days arrive late, rows of
a known order arrive later (a return, a second line), copies of rows already delivered arrive
again, and some rows are bad. After every arrival an incremental run and a full run make the
same snapshot in two warehouses; the two must agree customer by customer, and every run's
reconciliation must add up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from _arrivals import LOOKBACK, QUIET, D, config, deliver, row, segment, snapshot
from deltalake import DeltaTable
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.errors import ConfigError, InputError
from rfm_spark.pipeline import run_segment


@st.composite
def arrivals(draw: st.DrawFn) -> list[list[tuple]]:
    """Rows spread over 1-3 arrivals in any order, plus copies re-delivered later."""
    rows = draw(st.lists(row, min_size=3, max_size=20))
    n = draw(st.integers(1, 3))
    where = draw(st.lists(st.integers(0, n - 1), min_size=len(rows), max_size=len(rows)))
    batches: list[list[tuple]] = [
        [r for r, w in zip(rows, where, strict=True) if w == i] for i in range(n)
    ]
    copies = draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.integers(0, n - 1))))
    for index, batch in copies[:4]:
        batches[batch].append(rows[index])
    return [b for b in batches if b]


def extra_copies_of_valid_rows(delivered: list[tuple]) -> int:
    valid = [r for r in delivered if r[0] and r[4] != "x"]
    return len(valid) - len(set(valid))


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=arrivals())
@example(  # late rows, a later line and a return of a known order, a copy, a bad row
    batches=[
        [("c1", "o1", 3, 10, "12.50"), ("c2", "", 5, 9, "5.25")],
        [("c1", "o1", 3, 11, "99.00"), ("c2", "", 5, 9, "5.25"), ("c3", "o2", 20, 8, "x")],
        [("c1", "o1", 2, 12, "-12.50"), ("c1", "o1", 3, 10, "12.50"), ("c4", "o3", 35, 1, "5.25")],
    ]
)
def test_incremental_snapshots_equal_full_recomputes(
    spark: SparkSession, batches: list[list[tuple]]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="rfm-incremental-"))
    try:
        delivered: list[tuple] = []
        input_rows = duplicates = 0
        every_run_counted = True
        for i, batch in enumerate(batches):
            deliver(root / "input", f"part-{i}.csv", batch)
            delivered += batch
            day = D + dt.timedelta(days=i)  # one snapshot a day, each after its arrival
            inc = segment(spark, config(root, "incremental"), day)
            full = segment(spark, config(root, "full"), day)
            assert (inc is None) == (full is None)
            if inc is None or full is None:
                every_run_counted = False  # a refused run reports no counts
                continue
            assert inc.reconciliation.balanced and full.reconciliation.balanced
            input_rows += inc.reconciliation.input_rows
            duplicates += inc.reconciliation.quarantined.get("duplicate_row", 0)
            assert inc.reconciliation.input_rows <= len(batch)  # only the new rows
            pd.testing.assert_frame_equal(
                snapshot(root / "incremental", day), snapshot(root / "full", day)
            )
        if every_run_counted:  # every delivered row was read once, every re-delivered copy caught
            assert input_rows == len(delivered)
            assert duplicates == extra_copies_of_valid_rows(delivered)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def two_days(tmp_path: Path) -> Path:
    deliver(tmp_path / "input", "a.csv", [("c1", "o1", 3, 10, "12.50"), ("c2", "", 5, 9, "5.25")])
    return tmp_path


def test_a_replayed_batch_commits_nothing_twice(spark: SparkSession, two_days: Path) -> None:
    """A crash after the batch's commit but before the stream recorded it: the next run reads
    the same batch again, and its writes are skipped by their batch id."""
    strict = {"validation.max_quarantine_share": 0.01}
    cfg = config(two_days, "incremental", **strict)
    first = run_segment(spark, cfg, D, progress=QUIET)
    activity = two_days / "incremental" / "customer_day_activity"
    version = DeltaTable(str(activity)).version()
    commits = two_days / "incremental" / "_checkpoints" / "customer_day_activity" / "commits"
    for name in ("0", ".0.crc"):  # the stream forgets it finished batch 0
        (commits / name).unlink(missing_ok=True)
    again = run_segment(spark, cfg, D, progress=QUIET)
    assert DeltaTable(str(activity)).version() == version
    # the batch was read again and recognised as committed: not taken for copies of itself
    assert again.reconciliation == first.reconciliation
    assert not (two_days / "incremental" / "quarantine").exists()
    assert first.summary == again.summary  # the rows were not added a second time


def test_a_file_delivered_twice_is_quarantined_without_failing_the_run(
    spark: SparkSession, two_days: Path
) -> None:
    cfg = config(two_days, "incremental", **{"validation.max_quarantine_share": 0.01})
    first = run_segment(spark, cfg, D, progress=QUIET)
    shutil.copy(two_days / "input" / "a.csv", two_days / "input" / "a-again.csv")
    again = run_segment(spark, cfg, D, progress=QUIET)
    assert again.reconciliation.quarantined == {"duplicate_row": 2}
    assert again.reconciliation.used == 0 and again.reconciliation.balanced
    assert again.summary == first.summary


def test_a_lost_activity_table_is_rebuilt_from_the_whole_input(
    spark: SparkSession, two_days: Path
) -> None:
    """The orphaned checkpoint is dropped; the new one has a new query id, so the rebuilt
    batches' writes are not mistaken for the old ones (the bad row is quarantined again)."""
    deliver(two_days / "input", "b.csv", [("", "o9", 2, 8, "1.00")])
    cfg = config(two_days, "incremental")
    first = run_segment(spark, cfg, D, progress=QUIET)
    shutil.rmtree(two_days / "incremental" / "customer_day_activity")
    again = run_segment(spark, cfg, D, progress=QUIET)
    assert again.reconciliation == first.reconciliation
    assert again.summary == first.summary
    quarantine = DeltaTable(str(two_days / "incremental" / "quarantine")).to_pandas()
    assert list(quarantine["reason"]) == ["null_customer_id", "null_customer_id"]
    # each run reports the quarantine version that took its batch's bad row
    assert (
        first.quarantine_path
        == again.quarantine_path
        == str(two_days / "incremental" / "quarantine")
    )
    assert (first.quarantine_version, again.quarantine_version) == (0, 1)


def test_cli_flags_choose_the_mode_and_the_commit_says_which(
    spark: SparkSession,
    two_days: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--snapshot-date", D.isoformat(), "--input", str(two_days / "input")]
    flags += ["--input-format", "csv", "--lookback-days", str(LOOKBACK), "--quiet"]
    warehouse = two_days / "cli"
    relative = os.path.relpath(warehouse)  # as conf/local.yaml has it (./warehouse)
    for mode in ("--incremental", "--rebuild", "--full"):
        assert main(["segment", mode, *flags, "--warehouse", relative]) == 0
    history = DeltaTable(str(warehouse / "customer_segments")).history()
    made_by = [json.loads(h["userMetadata"])["made_by"] for h in history[:3]]
    assert made_by == ["full", "incremental", "incremental"]  # newest first
    activity = DeltaTable(str(warehouse / "customer_day_activity"))
    # the rebuild emptied the table in one commit, then read the whole input again
    assert activity.version() == 2 and len(activity.to_pandas()) == 2
    emptied = DeltaTable(str(warehouse / "customer_day_activity"), version=1).to_pandas()
    assert emptied.empty
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["segment", "--incremental", "--full", *flags])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_backlog_of_files_is_read_a_few_files_per_batch(
    spark: SparkSession, tmp_path: Path
) -> None:
    """``--files-per-batch`` (``features.files_per_batch``): a backlog of daily files is read
    in micro-batches of at most that many files, each its own commit to the activity; a copy
    of a row an earlier batch took (of the same run, or of an earlier one) is caught, and the
    snapshot equals the full recompute."""
    first_row = ("c1", "o1", 12, 10, "12.50")
    backlog = [  # one file a day, oldest first; a bad row in the first, copies in the third
        [first_row, ("c2", "", 12, 9, "5.25"), ("", "o5", 12, 2, "0.99")],  # and the last
        [("c1", "o2", 9, 11, "99.00")],
        [("c3", "o3", 6, 8, "5.25"), ("c2", "o4", 6, 8, "-5.25"), first_row],
        [("c4", "", 3, 1, "0.99")],
        [first_row],
    ]
    for i, rows in enumerate(backlog):
        deliver(tmp_path / ("input" if i < 3 else "later"), f"day-{i}.csv", rows)
    cfg = config(tmp_path, "incremental", **{"features.files_per_batch": 1})
    first = run_segment(spark, cfg, D, progress=QUIET)
    activity = tmp_path / "incremental" / "customer_day_activity"
    assert len(DeltaTable(str(activity)).history()) == 3  # a commit per file
    assert first.reconciliation.input_rows == 7 and first.reconciliation.balanced
    assert first.reconciliation.quarantined == {"null_customer_id": 1, "duplicate_row": 1}

    for later in sorted((tmp_path / "later").iterdir()):  # two more files, one per batch
        later.rename(tmp_path / "input" / later.name)
    flags = ["--snapshot-date", D.isoformat(), "--input", str(tmp_path / "input")]
    flags += ["--input-format", "csv", "--lookback-days", str(LOOKBACK), "--quiet"]
    warehouse = ["--warehouse", str(tmp_path / "incremental")]
    assert main(["segment", "--incremental", "--files-per-batch", "1", *flags, *warehouse]) == 0
    assert len(DeltaTable(str(activity)).history()) == 5
    commit = DeltaTable(str(tmp_path / "incremental" / "customer_segments")).history(1)[0]
    recon = json.loads(json.loads(commit["userMetadata"])["reconciliation"])
    assert recon["input_rows"] == 2 and recon["quarantined"] == {"duplicate_row": 1}
    run_segment(spark, config(tmp_path, "full"), D, progress=QUIET)
    pd.testing.assert_frame_equal(
        snapshot(tmp_path / "incremental", D), snapshot(tmp_path / "full", D)
    )


def test_activity_without_its_record_is_refused(spark: SparkSession, two_days: Path) -> None:
    cfg = config(two_days, "incremental")
    run_segment(spark, cfg, D, progress=QUIET)
    shutil.rmtree(two_days / "incremental" / "_checkpoints")
    with pytest.raises(ConfigError, match="record of which input rows it holds"):
        run_segment(spark, cfg, D, progress=QUIET)


def test_activity_built_with_other_rules_is_refused(spark: SparkSession, two_days: Path) -> None:
    run_segment(spark, config(two_days, "incremental"), D, progress=QUIET)
    keep = config(two_days, "incremental", **{"validation.duplicates": "keep"})
    with pytest.raises(ConfigError, match="other input, time zone or duplicate settings"):
        run_segment(spark, keep, D, progress=QUIET)


def test_activity_of_another_input_is_refused(spark: SparkSession, two_days: Path) -> None:
    run_segment(spark, config(two_days, "incremental"), D, progress=QUIET)
    shutil.copytree(two_days / "input", two_days / "other")
    other = config(two_days, "incremental", **{"input.path": str(two_days / "other")})
    with pytest.raises(ConfigError, match="was read from the input"):
        run_segment(spark, other, D, progress=QUIET)


def test_kept_copies_count_like_a_full_run(spark: SparkSession, tmp_path: Path) -> None:
    """``validation.duplicates: keep``: a re-delivered row is one more row, in both modes."""
    rows = [("c1", "", 3, 10, "12.50"), ("c2", "o1", 4, 9, "5.25")]
    deliver(tmp_path / "input", "a.csv", rows)
    deliver(tmp_path / "input", "b.csv", rows[:1])
    keep = {"validation.duplicates": "keep"}
    inc = run_segment(spark, config(tmp_path, "incremental", **keep), D, progress=QUIET)
    run_segment(spark, config(tmp_path, "full", **keep), D, progress=QUIET)
    assert inc.reconciliation.quarantined == {} and inc.reconciliation.used == 3
    got = snapshot(tmp_path / "incremental", D)
    pd.testing.assert_frame_equal(got, snapshot(tmp_path / "full", D))
    assert got.loc["c1", "frequency"] == 2  # each copy without an order id is an order


def test_a_file_rewritten_or_removed_is_refused_until_a_rebuild(
    spark: SparkSession, two_days: Path
) -> None:
    """A file source reads each file once: a file changed in place or removed after it was read
    would leave the activity holding rows the input no longer has. The run refuses; a rebuild
    reads the whole input again and equals the full recompute."""
    cfg = config(two_days, "incremental")
    run_segment(spark, cfg, D, progress=QUIET)
    a = two_days / "input" / "a.csv"
    deliver(two_days / "input", "a.csv", [("c1", "o1", 3, 10, "40.00")])  # same name, new rows
    os.utime(a, (a.stat().st_atime, a.stat().st_mtime + 60))
    with pytest.raises(InputError, match=r"a\.csv \(rewritten\).*--rebuild"):
        run_segment(spark, cfg, D, progress=QUIET)
    rebuilt = run_segment(spark, cfg, D, progress=QUIET, rebuild=True)
    assert rebuilt.reconciliation.input_rows == 1
    run_segment(spark, config(two_days, "full"), D, progress=QUIET)
    pd.testing.assert_frame_equal(
        snapshot(two_days / "incremental", D), snapshot(two_days / "full", D)
    )
    assert snapshot(two_days / "incremental", D)["monetary"].tolist() == [40]

    deliver(two_days / "input", "b.csv", [("c2", "", 5, 9, "5.25")])
    run_segment(spark, cfg, D, progress=QUIET)
    a.unlink()
    with pytest.raises(InputError, match=r"a\.csv \(removed\)"):
        run_segment(spark, cfg, D, progress=QUIET)
    run_segment(spark, cfg, D, progress=QUIET, rebuild=True)
    assert snapshot(two_days / "incremental", D).index.tolist() == ["c2"]


def test_a_rebuild_takes_new_settings(spark: SparkSession, two_days: Path) -> None:
    run_segment(spark, config(two_days, "incremental"), D, progress=QUIET)
    keep = config(two_days, "incremental", **{"validation.duplicates": "keep"})
    with pytest.raises(ConfigError, match="--rebuild"):
        run_segment(spark, keep, D, progress=QUIET)
    run_segment(spark, keep, D, progress=QUIET, rebuild=True)
    again = run_segment(spark, keep, D, progress=QUIET)  # the new settings are recorded
    assert again.reconciliation.input_rows == 0


def test_an_input_folder_with_a_space_in_its_name(spark: SparkSession, tmp_path: Path) -> None:
    """The files read are matched with the folder's listing whatever characters its path holds:
    a second run with one more file reads just that file and refuses nothing."""
    root = tmp_path / "shop exports"
    deliver(root / "input", "a b.csv", [("c1", "o1", 3, 10, "12.50")])
    cfg = config(root, "incremental")
    run_segment(spark, cfg, D, progress=QUIET)
    deliver(root / "input", "c.csv", [("c2", "o2", 2, 9, "5.25")])
    again = run_segment(spark, cfg, D, progress=QUIET)
    assert again.reconciliation.input_rows == 1
    assert snapshot(root / "incremental", D).index.tolist() == ["c1", "c2"]
