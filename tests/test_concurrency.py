"""Concurrent writers, with real processes: different dates both land; the same date never
leaves a partition that mixes two runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _procs import fast_jvm_env, segment_command
from deltalake import DeltaTable

pytestmark = pytest.mark.slow


def start(demo: Path, warehouse: Path, day: str) -> subprocess.Popen[str]:
    cmd = [*segment_command(demo, warehouse, day), "--quiet"]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fast_jvm_env()
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Exit code and the CLI's own stderr lines (not Spark's) of each process."""
    out = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        own = "\n".join(line for line in err.splitlines() if line.startswith("rfm-spark"))
        out.append((p.returncode, own))
    return out


def test_two_dates_at_once_both_land_and_same_date_never_mixes(demo: Path, tmp_path: Path) -> None:
    # the first race also creates the table
    warehouse = tmp_path / "wh"
    results = finish([start(demo, warehouse, "2026-10-01"), start(demo, warehouse, "2026-10-15")])
    assert [code for code, _ in results] == [0, 0], results
    table = DeltaTable(str(warehouse / "customer_segments"))
    df = table.to_pandas()
    per_date = df.groupby(df["snapshot_date"].astype(str))
    assert sorted(per_date.groups) == ["2026-10-01", "2026-10-15"]
    for _, part in per_date:
        assert part["customer_id"].is_unique and part["run_id"].nunique() == 1

    results = finish([start(demo, warehouse, "2026-11-01"), start(demo, warehouse, "2026-11-01")])
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for code, err in results:
        if code:
            assert err.strip().count("\n") == 0 and "concurrent" in err.lower(), err
    df = DeltaTable(str(warehouse / "customer_segments")).to_pandas()
    part = df[df["snapshot_date"].astype(str) == "2026-11-01"]
    assert part["run_id"].nunique() == 1 and part["customer_id"].is_unique


def test_four_runs_at_once_under_load(demo: Path, tmp_path: Path) -> None:
    """Several runs compete for two cores and one table: a rerun of an existing date, two new
    dates and a second run of one of them. Every run lands or fails with one clear line, and
    every partition holds exactly one run's rows."""
    warehouse = tmp_path / "wh"
    assert finish([start(demo, warehouse, "2026-09-01")])[0][0] == 0
    days = ["2026-09-01", "2026-09-08", "2026-09-15", "2026-09-15"]
    results = finish([start(demo, warehouse, d) for d in days])
    codes = [code for code, _ in results]
    assert codes[:2] == [0, 0], results  # other dates (and a rerun) always land
    assert sorted(codes[2:]) in ([0, 0], [0, 1]), results
    for code, err in results:
        if code:
            assert err.strip().count("\n") == 0 and "concurrent" in err.lower(), err
    table = DeltaTable(str(warehouse / "customer_segments"))
    assert len(table.history()) == 1 + codes.count(0)
    df = table.to_pandas()
    per_date = df.groupby(df["snapshot_date"].astype(str))
    assert sorted(per_date.groups) == ["2026-09-01", "2026-09-08", "2026-09-15"]
    for _, part in per_date:
        assert part["customer_id"].is_unique and part["run_id"].nunique() == 1
