"""Arrivals of input rows for the incremental tests: generated rows, CSV deliveries into an
input folder, the configuration of the two warehouses (incremental and full) and their
snapshots read back with deltalake."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from rfm_spark.config import Config
from rfm_spark.errors import InputError
from rfm_spark.pipeline import run_segment
from rfm_spark.pipeline.results import SegmentResult
from rfm_spark.progress import Progress

D = dt.date(2026, 3, 1)
LOOKBACK = 30
HEADER = ["customer_id", "order_id", "order_ts", "amount"]
QUIET = Progress("test", quiet=True)

row = st.tuples(
    st.sampled_from(["c1", "c2", "c3", "c4", "c5", ""]),  # "" is a bad row (no customer)
    st.sampled_from(["o1", "o2", "o3", "o4", ""]),  # "" = no order id: the row is its own order
    st.integers(1, 40),  # days before D: some before the 30-day window
    st.integers(0, 23),
    st.sampled_from(["12.50", "99.00", "5.25", "-5.25", "-12.50", "0.99", "x"]),  # x: bad
)


def csv_row(r: tuple) -> list[str]:
    customer, order, days_before, hour, amount = r
    ts = dt.datetime.combine(D - dt.timedelta(days=days_before), dt.time(hour, 15))
    return [customer, order, ts.strftime("%Y-%m-%d %H:%M:%S"), amount]


def deliver(folder: Path, name: str, rows: list[tuple]) -> None:
    """Write one CSV file into the input folder, complete before it appears there."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder.parent / f".{name}"
    with part.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        out.writerows(csv_row(r) for r in rows)
    part.rename(folder / name)


def config(root: Path, mode: str, **more: object) -> Config:
    return Config().with_overrides(
        {
            "warehouse": str(root / mode),
            "input.path": str(root / "input"),
            "input.format": "csv",
            "features.lookback_days": LOOKBACK,
            "features.mode": mode,
            "validation.max_quarantine_share": 1.0,
            **more,
        }
    )


def segment(spark: SparkSession, cfg: Config, day: dt.date) -> SegmentResult | None:
    """One run; None when the window has no usable row (both modes say so alike)."""
    try:
        return run_segment(spark, cfg, day, progress=QUIET)
    except InputError as exc:
        assert "no usable transactions" in str(exc)
        return None


def snapshot(warehouse: Path, day: dt.date) -> pd.DataFrame:
    df = DeltaTable(str(warehouse / "customer_segments")).to_pandas()
    df = df[df["snapshot_date"].astype(str) == day.isoformat()].drop(columns=["run_id"])
    return df.set_index("customer_id").sort_index()
