"""Incremental runs over a Delta input that records its changes (its change data feed).

Rows are appended (late days, copies of rows already there, bad rows), updated (a corrected
amount, a timestamp moved to another day) and deleted in any order, a few commits between two
runs, by customer or by customer and order (so a changed day keeps rows the change did not
touch); an incremental run follows every step and must read only the rows the step added,
with its reconciliation adding up. The last snapshot must equal the full recompute (the
oracle) customer by customer.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from _arrivals import QUIET, D, config, csv_row, row, segment, snapshot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from rfm_spark.errors import ConfigError, InputError
from rfm_spark.pipeline import run_segment
from rfm_spark.pipeline.results import SegmentResult
from rfm_spark.sqltext import quote, sql_string

SCHEMA = "customer_id string, order_id string, order_ts string, amount string"
# an update or delete picks rows by customer, or by customer and order id: then the other rows
# of that customer's days stay, and the recompute has to read them from the input
picked = st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from([None, "o1", "o2"]))
change = st.one_of(
    st.tuples(st.just("append"), st.lists(row, min_size=1, max_size=8), st.none()),
    st.tuples(st.just("amount"), picked, st.sampled_from(["30.00", "-5.25", "x"])),
    st.tuples(st.just("move"), picked, st.integers(1, 40)),
    st.tuples(st.just("delete"), picked, st.none()),
)
# the commits between two runs: one to three changes
steps = st.lists(st.lists(change, min_size=1, max_size=3), min_size=1, max_size=2)


def apply(spark: SparkSession, table: str, op: tuple) -> int:
    """One commit to the input table: an append, an update or a delete.

    Returns:
        The rows it adds to the change feed as new rows (inserts and updated rows' new images).
    """
    kind, what, value = op
    where = f"delta.{quote(table)}"
    if kind == "append":
        rows = spark.createDataFrame([csv_row(r) for r in what], SCHEMA)
        writer = rows.write.format("delta").mode("append")
        writer.option("delta.enableChangeDataFeed", "true").save(table)
        return len(what)
    customer, order = what
    match = f"customer_id = '{customer}'" + (f" AND order_id = '{order}'" if order else "")
    new = 0 if kind == "delete" else spark.sql(f"SELECT * FROM {where} WHERE {match}").count()
    if kind == "amount":  # a corrected amount (perhaps now a bad one)
        spark.sql(f"UPDATE {where} SET amount = {sql_string(value)} WHERE {match}")
    elif kind == "move":  # the rows' timestamp corrected to another day
        ts = csv_row((customer, "", value, 9, ""))[2]
        spark.sql(f"UPDATE {where} SET order_ts = {sql_string(ts)} WHERE {match}")
    else:
        spark.sql(f"DELETE FROM {where} WHERE {match}")
    return new


def run_steps(spark: SparkSession, first: list[tuple], later: list[list[tuple]], **more) -> None:
    """Commit the first rows, then each step's changes, with an incremental run after each
    (reading only what the step added); the last snapshot must equal the full recompute."""
    root = Path(tempfile.mkdtemp(prefix="rfm-change-feed-"))
    table = str(root / "input")
    settings = {"input.format": "delta", **more}
    try:
        inc: SegmentResult | None = None
        for i, ops in enumerate([first, *later]):
            new = sum(apply(spark, table, op) for op in ops)
            day = D + dt.timedelta(days=i)
            inc = segment(spark, config(root, "incremental", **settings), day)
            if inc is not None:
                assert inc.reconciliation.balanced
                assert inc.reconciliation.input_rows == new  # the changes only, not a re-read
        full = segment(spark, config(root, "full", **settings), day)
        assert (inc is None) == (full is None)
        if inc is not None and full is not None:
            assert full.reconciliation.balanced
            pd.testing.assert_frame_equal(
                snapshot(root / "incremental", day), snapshot(root / "full", day)
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


FIRST = [  # c1 has two orders on one day, and a copy of one; c3 an order of two lines
    ("append", [("c1", "o1", 3, 10, "12.50"), ("c1", "o1", 3, 10, "12.50")], None),
    ("append", [("c1", "o2", 3, 11, "99.00"), ("c2", "", 5, 9, "5.25")], None),
    (
        "append",
        [("c3", "o2", 20, 8, "99.00"), ("c3", "o2", 20, 9, "-5.25"), ("c1", "o3", 4, 1, "x")],
        None,
    ),
]
LATER = [
    [("amount", ("c1", "o1"), "30.00"), ("delete", ("c2", None), None)],  # o2 stays beside o1
    [("move", ("c3", "o2"), 35), ("append", [("c1", "o1", 3, 10, "30.00")], None)],  # a copy
    [("delete", ("c1", "o2"), None), ("amount", ("c3", None), "x")],  # good rows made bad
]


@pytest.mark.slow
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(row, min_size=2, max_size=10), later=steps)
@example(first=[r for op in FIRST for r in op[1]], later=LATER)
def test_updates_and_deletes_reach_the_incremental_snapshot(
    spark: SparkSession, first: list[tuple], later: list[list[tuple]]
) -> None:
    run_steps(spark, [("append", first, None)], later)


@pytest.mark.slow
def test_updates_and_deletes_with_copies_kept(spark: SparkSession) -> None:
    """``validation.duplicates: keep``: every copy counts, so a recompute that took a row twice
    (or a new row at a recomputed day once more) would show."""
    run_steps(spark, FIRST, LATER, **{"validation.duplicates": "keep"})


def test_updates_without_the_change_feed_are_refused_until_it_is_on(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A Delta input that does not record its changes: appends are read as they come; a commit
    that changed rows already read stops the run with what to do. Turning the feed on makes
    the activity another query's (refused until a rebuild); after it, updates are taken."""
    table = str(tmp_path / "input")
    rows = [
        ("c1", "o1", dt.datetime(2026, 2, 20, 10), 12.5),
        ("c2", "o2", dt.datetime(2026, 2, 21), 5.0),
    ]
    schema = "customer_id string, order_id string, order_ts timestamp, amount double"
    spark.createDataFrame(rows, schema).write.format("delta").save(table)
    cfg = config(tmp_path, "incremental", **{"input.format": "delta"})
    run_segment(spark, cfg, D, progress=QUIET)
    spark.sql(f"UPDATE delta.`{table}` SET amount = 30.0 WHERE customer_id = 'c1'")
    with pytest.raises(InputError, match=r"updated or deleted.*change data feed.*--rebuild"):
        run_segment(spark, cfg, D, progress=QUIET)
    spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    with pytest.raises(ConfigError, match=r"change data feed.*--rebuild"):
        run_segment(spark, cfg, D, progress=QUIET)
    run_segment(spark, cfg, D, progress=QUIET, rebuild=True)
    spark.sql(f"UPDATE delta.`{table}` SET amount = 40.0 WHERE customer_id = 'c2'")
    assert run_segment(spark, cfg, D, progress=QUIET).reconciliation.input_rows == 1
    run_segment(spark, config(tmp_path, "full", **{"input.format": "delta"}), D, progress=QUIET)
    got = snapshot(tmp_path / "incremental", D)
    pd.testing.assert_frame_equal(got, snapshot(tmp_path / "full", D))
    assert got.loc["c1", "monetary"] == 30 and got.loc["c2", "monetary"] == 40


def test_a_metastore_table_with_the_change_feed(spark: SparkSession, tmp_path: Path) -> None:
    """``input.format: table`` naming a Delta table: its changes are read the same way."""
    location = str(tmp_path / "tx")
    spark.sql(
        f"CREATE TABLE cdf_input (customer_id string, order_id string, order_ts string, "
        f"amount string) USING delta LOCATION {sql_string(location)} "
        "TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    try:
        apply(
            spark,
            location,
            ("append", [("c1", "o1", 3, 10, "12.50"), ("c2", "", 5, 9, "5.25")], None),
        )
        cfg = config(
            tmp_path, "incremental", **{"input.format": "table", "input.path": "cdf_input"}
        )
        assert run_segment(spark, cfg, D, progress=QUIET).reconciliation.input_rows == 2
        spark.sql("UPDATE cdf_input SET amount = '40.00' WHERE customer_id = 'c2'")
        assert run_segment(spark, cfg, D, progress=QUIET).reconciliation.input_rows == 1
        full = config(tmp_path, "full", **{"input.format": "table", "input.path": "cdf_input"})
        run_segment(spark, full, D, progress=QUIET)
        got = snapshot(tmp_path / "incremental", D)
        pd.testing.assert_frame_equal(got, snapshot(tmp_path / "full", D))
        assert got.loc["c2", "monetary"] == 40
    finally:
        spark.sql("DROP TABLE IF EXISTS cdf_input")
