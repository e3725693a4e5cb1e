"""Incremental runs over a Delta input that records its changes (its change data feed).

Rows are appended (late days, copies of rows already there, bad rows), updated (a corrected
amount, a timestamp moved to another day) and deleted in any order; an incremental run follows
every change and must read only the rows the change added, with its reconciliation adding up.
The last snapshot must equal the full recompute (the oracle) customer by customer.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from test_incremental import QUIET, D, config, csv_row, row, segment, snapshot

from rfm_spark.errors import InputError
from rfm_spark.pipeline import run_segment
from rfm_spark.pipeline.results import SegmentResult
from rfm_spark.sqltext import quote, sql_string

SCHEMA = "customer_id string, order_id string, order_ts string, amount string"
customer = st.sampled_from(["c1", "c2", "c3"])
change = st.one_of(
    st.tuples(st.just("append"), st.lists(row, min_size=1, max_size=8), st.none()),
    st.tuples(st.just("amount"), customer, st.sampled_from(["30.00", "-5.25", "x"])),
    st.tuples(st.just("move"), customer, st.integers(1, 40)),
    st.tuples(st.just("delete"), customer, st.none()),
)


def apply(spark: SparkSession, table: str, op: tuple) -> int:
    """One commit to the input table: an append, an update or a delete.

    Returns:
        The rows it adds to the change feed as new rows (inserts and updated rows' new images).
    """
    kind, what, value = op
    where = f"delta.{quote(table)}"
    if kind == "append":
        new = len(what)
        rows = spark.createDataFrame([csv_row(r) for r in what], SCHEMA)
        rows.write.format("delta").mode("append").option("delta.enableChangeDataFeed", "true").save(
            table
        )
        return new
    new = (
        0
        if kind == "delete"
        else spark.sql(f"SELECT * FROM {where} WHERE customer_id = '{what}'").count()
    )
    if kind == "amount":  # a corrected amount (perhaps now a bad one)
        spark.sql(f"UPDATE {where} SET amount = {sql_string(value)} WHERE customer_id = '{what}'")
    elif kind == "move":  # the rows' timestamp corrected to another day
        ts = csv_row((what, "", value, 9, ""))[2]
        spark.sql(f"UPDATE {where} SET order_ts = {sql_string(ts)} WHERE customer_id = '{what}'")
    else:
        spark.sql(f"DELETE FROM {where} WHERE customer_id = '{what}'")
    return new


@pytest.mark.slow
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.tuples(
        st.tuples(st.just("append"), st.lists(row, min_size=2, max_size=10), st.none()),
        st.lists(change, min_size=1, max_size=2),
    ).map(lambda first_rest: [first_rest[0], *first_rest[1]])
)
@example(  # a copy, a corrected amount, a row moved out of the window, a deleted customer
    changes=[
        (
            "append",
            [
                ("c1", "o1", 3, 10, "12.50"),
                ("c1", "o1", 3, 10, "12.50"),
                ("c2", "", 5, 9, "5.25"),
                ("c3", "o2", 20, 8, "99.00"),
                ("c1", "o3", 4, 1, "x"),
            ],
            None,
        ),
        ("amount", "c1", "30.00"),
        ("move", "c3", 35),
        ("delete", "c2", None),
    ]
)
def test_updates_and_deletes_reach_the_incremental_snapshot(
    spark: SparkSession, changes: list[tuple]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="rfm-change-feed-"))
    table = str(root / "input")
    try:
        inc: SegmentResult | None = None
        for i, op in enumerate(changes):  # an incremental run after every change
            new = apply(spark, table, op)
            day = D + dt.timedelta(days=i)
            inc = segment(spark, config(root, "incremental", **{"input.format": "delta"}), day)
            if inc is not None:
                assert inc.reconciliation.balanced
                assert inc.reconciliation.input_rows == new  # the changes only, not a re-read
        full = segment(spark, config(root, "full", **{"input.format": "delta"}), day)
        assert (inc is None) == (full is None)
        if inc is not None and full is not None:  # the last snapshot equals the full recompute
            assert full.reconciliation.balanced
            pd.testing.assert_frame_equal(
                snapshot(root / "incremental", day), snapshot(root / "full", day)
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_updates_without_the_change_feed_are_refused_until_a_rebuild(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A Delta input that does not record its changes: appends are read as they come; a commit
    that changed rows already read stops the run with what to do, and a rebuild reads the
    table as it is now."""
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
    run_segment(spark, cfg, D, progress=QUIET, rebuild=True)
    run_segment(spark, config(tmp_path, "full", **{"input.format": "delta"}), D, progress=QUIET)
    got = snapshot(tmp_path / "incremental", D)
    pd.testing.assert_frame_equal(got, snapshot(tmp_path / "full", D))
    assert got.loc["c1", "monetary"] == 30
