"""Backfill from one pass, history with run metadata, retention and VACUUM, time-travel export."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.config import Config, HistorySettings
from rfm_spark.errors import ConfigError, UsageError
from rfm_spark.history import vacuum
from rfm_spark.io.store import open_store
from rfm_spark.pipeline import run_backfill, run_segment, snapshot_dates
from rfm_spark.progress import Progress

D1 = dt.date(2026, 10, 1)


def config(demo: Path, warehouse: Path) -> Config:
    return Config().with_overrides(
        {"warehouse": str(warehouse), "input.path": str(demo / "transactions")}
    )


def snapshot(table: Path, day: dt.date, version: int | None = None) -> pd.DataFrame:
    df = DeltaTable(str(table), version=version).to_pandas()
    df = df[df["snapshot_date"].astype(str) == day.isoformat()]
    return df.drop(columns=["run_id"]).sort_values("customer_id").reset_index(drop=True)


def test_snapshot_dates() -> None:
    assert snapshot_dates(D1, D1 + dt.timedelta(days=14), 7) == [
        D1,
        D1 + dt.timedelta(days=7),
        D1 + dt.timedelta(days=14),
    ]
    with pytest.raises(ConfigError, match="before --start"):
        snapshot_dates(D1, D1 - dt.timedelta(days=1))
    with pytest.raises(ConfigError, match="at least 1"):
        snapshot_dates(D1, D1, 0)


@pytest.mark.slow
def test_backfill_equals_separate_segment_runs(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    dates = snapshot_dates(D1, D1 + dt.timedelta(days=14), 7)
    quiet = Progress("t", quiet=True)
    back = run_backfill(spark, config(demo, tmp_path / "b"), dates, progress=quiet)
    assert back.versions == [0, 1, 2]
    for d in dates:
        run_segment(spark, config(demo, tmp_path / "s"), d, progress=quiet)
    table_b, table_s = tmp_path / "b" / "customer_segments", tmp_path / "s" / "customer_segments"
    for d in dates:
        pd.testing.assert_frame_equal(snapshot(table_b, d), snapshot(table_s, d))
    # each date's commit reconciles on its own
    commits = DeltaTable(str(table_b)).history()
    for c in commits:
        meta = json.loads(c["userMetadata"])
        recon = json.loads(meta["reconciliation"])
        used = recon["used"] + recon["before_window"] + recon["after_snapshot"]
        assert recon["input_rows"] == used + sum(recon["quarantined"].values())
        assert int(meta["output_rows"]) == len(
            snapshot(table_b, dt.date.fromisoformat(meta["snapshot_date"]))
        )
    # the table keeps time travel for the transition window
    conf = DeltaTable(str(table_b)).metadata().configuration
    assert conf["delta.deletedFileRetentionDuration"] == "interval 30 days"
    assert conf["delta.logRetentionDuration"] == "interval 30 days"


@pytest.mark.slow
def test_backfill_single_commit(spark: SparkSession, demo: Path, tmp_path: Path) -> None:
    dates = [D1, D1 + dt.timedelta(days=3)]
    back = run_backfill(
        spark, config(demo, tmp_path), dates, single_commit=True, progress=Progress("t", quiet=True)
    )
    table = DeltaTable(str(tmp_path / "customer_segments"))
    assert back.versions == [0] and table.version() == 0
    df = table.to_pandas()
    assert sorted(df["snapshot_date"].astype(str).unique()) == [d.isoformat() for d in dates]
    assert not df.duplicated(["customer_id", "snapshot_date"]).any()


@pytest.mark.slow
def test_history_and_time_travel_export_cli(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--warehouse", str(tmp_path), "--quiet"]
    seg = ["segment", "--snapshot-date", D1.isoformat(), "--input", str(demo / "transactions")]
    assert main([*seg, *common]) == 0
    assert main([*seg, "--scheme", "rf10", *common]) == 0
    capsys.readouterr()

    assert main(["history", *common]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["version", "committed_at", "operation", "snapshot_date"]
    assert out[2].split()[0] == "1" and "rf10" in out[2] and "rfm11" in out[3]

    assert main(["history", "--json", *common]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["version"] for r in records] == [1, 0]
    assert records[0]["metadata"]["scoring"]["method"] == "ntile"

    # version 0 holds the rfm11 segments, version 1 the rf10 ones
    v0 = tmp_path / "v0.csv"
    assert (
        main(
            [
                "export",
                "--snapshot-date",
                D1.isoformat(),
                "--as-of-version",
                "0",
                "--output",
                str(v0),
                *common,
            ]
        )
        == 0
    )
    now = tmp_path / "now.parquet"
    assert main(["export", "--snapshot-date", D1.isoformat(), "--output", str(now), *common]) == 0
    expected_v0 = snapshot(tmp_path / "customer_segments", D1, version=0)
    got_v0 = pd.read_csv(v0, dtype={"customer_id": str})
    assert got_v0["segment"].tolist() == expected_v0["segment"].tolist()
    assert set(pd.read_parquet(now)["segment"]) <= {
        "hibernating",
        "at_risk",
        "cannot_lose_them",
        "about_to_sleep",
        "need_attention",
        "loyal",
        "promising",
        "new_customers",
        "potential_loyalist",
        "champions",
    }
    first_commit = DeltaTable(str(tmp_path / "customer_segments")).history()[-1]["timestamp"]
    before = dt.datetime.fromtimestamp(first_commit / 1000 - 3600, tz=dt.timezone.utc)
    code = main(
        [
            "export",
            "--snapshot-date",
            D1.isoformat(),
            "--as-of-timestamp",
            before.isoformat(),
            "--output",
            str(tmp_path / "x.csv"),
            *common,
        ]
    )
    assert code == 1 and "before" in capsys.readouterr().err


def test_vacuum_refuses_to_cut_into_the_transition_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    settings = HistorySettings(transition_days=14, margin_days=16)
    with pytest.raises(UsageError, match="use at least 720"):
        vacuum(open_store(spark), str(tmp_path), settings, retain_hours=168)
    assert settings.table_properties()["delta.deletedFileRetentionDuration"] == "interval 30 days"
    long = HistorySettings(transition_days=60, margin_days=10).table_properties()
    assert long == {
        "delta.logRetentionDuration": "interval 70 days",
        "delta.deletedFileRetentionDuration": "interval 70 days",
        "delta.enableChangeDataFeed": "true",
    }


@pytest.mark.slow
def test_backfill_with_groups_and_quantiles_equals_segment_runs(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    dates = [D1, D1 + dt.timedelta(days=9)]
    quiet = Progress("t", quiet=True)

    def grouped(warehouse: Path) -> Config:
        return config(demo, warehouse).with_overrides(
            {
                "input.customers_path": str(demo / "customers"),
                "scoring.partition_by": ["country"],
                "scoring.method": "quantile",
            }
        )

    back = run_backfill(spark, grouped(tmp_path / "b"), dates, progress=quiet)
    for d in dates:
        single = run_segment(spark, grouped(tmp_path / "s"), d, progress=quiet)
        assert back.snapshots[dates.index(d)].scoring.cut_points == single.scoring.cut_points
    for d in dates:
        pd.testing.assert_frame_equal(
            snapshot(tmp_path / "b" / "customer_segments", d),
            snapshot(tmp_path / "s" / "customer_segments", d),
        )


@pytest.mark.slow
def test_a_retried_run_with_the_same_idempotency_key_writes_nothing(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    """An orchestrator retries a run that had committed (say the driver died while printing):
    the retry finds its commit by Delta's txnAppId/txnVersion and recomputes nothing; another
    key (the next day's run, or a deliberate rerun) replaces the snapshot as usual."""
    quiet = Progress("t", quiet=True)
    keyed = config(demo, tmp_path).with_overrides({"output.idempotency_key": "airflow-42"})
    first = run_segment(spark, keyed, D1, progress=quiet)
    retry = run_segment(spark, keyed, D1, progress=quiet)
    assert not first.replayed and retry.replayed
    assert (retry.version, retry.run_id, retry.reconciliation) == (
        first.version,
        first.run_id,
        first.reconciliation,
    )
    assert retry.summary == first.summary
    table = DeltaTable(str(tmp_path / "customer_segments"))
    assert table.version() == first.version
    assert table.transaction_version("rfm-spark:airflow-42") == 0  # Delta's own record
    rerun = run_segment(
        spark, keyed.with_overrides({"output.idempotency_key": "airflow-43"}), D1, progress=quiet
    )
    assert not rerun.replayed and rerun.version == first.version + 1
    latest = DeltaTable(str(tmp_path / "customer_segments")).history(1)[0]
    assert json.loads(latest["userMetadata"])["made_by"] == "full"
    # the same key for another date, or for a backfill, is refused before anything is written
    for other in (
        lambda: run_segment(spark, keyed, D1 + dt.timedelta(days=14), progress=quiet),
        lambda: run_backfill(spark, keyed, [D1, D1 + dt.timedelta(days=7)], progress=quiet),
    ):
        with pytest.raises(UsageError, match=f"'airflow-42' was already used for segment {D1}"):
            other()
    assert DeltaTable(str(tmp_path / "customer_segments")).version() == rerun.version
