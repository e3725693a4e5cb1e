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


def one_run_per_date(warehouse: Path, dates: list[str]) -> DeltaTable:
    """The table holds exactly ``dates``, each partition the rows of one run, once each."""
    table = DeltaTable(str(warehouse / "customer_segments"))
    df = table.to_pandas()
    per_date = df.groupby(df["snapshot_date"].astype(str))
    assert sorted(per_date.groups) == dates
    for _, part in per_date:
        assert part["customer_id"].is_unique and part["run_id"].nunique() == 1
    return table


def test_runs_at_once_land_or_fail_with_one_line(demo: Path, tmp_path: Path) -> None:
    """Runs compete for two cores and one table. First two new dates at once (the race also
    creates the table): both land. Then four at once: a rerun of a date already there, a new
    date, and two runs of another new date. Runs of different dates (and the rerun) always
    land; of two runs of one date, both land one after the other or one fails with a single
    clear line. Every partition holds exactly one run's rows."""
    warehouse = tmp_path / "wh"
    results = finish([start(demo, warehouse, "2026-10-01"), start(demo, warehouse, "2026-10-15")])
    assert [code for code, _ in results] == [0, 0], results
    assert len(one_run_per_date(warehouse, ["2026-10-01", "2026-10-15"]).history()) == 2

    days = ["2026-10-01", "2026-11-01", "2026-11-15", "2026-11-15"]
    results = finish([start(demo, warehouse, d) for d in days])
    codes = [code for code, _ in results]
    assert codes[:2] == [0, 0], results  # other dates (and a rerun) always land
    assert sorted(codes[2:]) in ([0, 0], [0, 1]), results
    for code, err in results:
        if code:
            assert err.strip().count("\n") == 0 and "concurrent" in err.lower(), err
    table = one_run_per_date(warehouse, ["2026-10-01", "2026-10-15", "2026-11-01", "2026-11-15"])
    assert len(table.history()) == 2 + codes.count(0)
