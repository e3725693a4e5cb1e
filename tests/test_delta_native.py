"""What the product takes from Delta itself: SQL time travel and history, the change data feed,
idempotent writes, OPTIMIZE and VACUUM, and a clear stop on a machine without the connector.
Tables are read back with Spark SQL, ``deltalake`` and DuckDB."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from _duck import duckdb_connection
from _procs import fast_jvm_env, segment_command
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.config import HistorySettings
from rfm_spark.io.commits import Txn
from rfm_spark.io.store import TableStore, open_store

D1 = datetime.date(2024, 1, 31)
D2 = datetime.date(2024, 2, 14)
SCHEMA = T.StructType(
    [T.StructField("customer_id", T.LongType()), T.StructField("segment", T.StringType())]
)


def frame(spark: SparkSession, rows: list[tuple[int, str]], day: datetime.date) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA).withColumn("snapshot_date", F.lit(day))


def write(
    store: TableStore,
    df: DataFrame,
    path: str,
    day: datetime.date,
    *,
    txn: Txn | None = None,
    run: str = "r",
) -> int:
    return store.write_partition(
        df,
        path,
        partition_column="snapshot_date",
        partition_value=day,
        metadata={"run_id": run},
        table_properties=HistorySettings().table_properties(),
        txn=txn,
    )


@pytest.fixture
def store(spark: SparkSession) -> TableStore:
    return open_store(spark)


def sql_rows(spark: SparkSession, query: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.sql(query).collect())


# ---- Spark SQL over what the store wrote --------------------------------------------------------


def test_sql_time_travel_and_run_metadata_in_describe_history(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    write(store, frame(spark, [(1, "champions"), (2, "lost")], D1), path, D1, run="first")
    write(store, frame(spark, [(1, "at_risk")], D1), path, D1, run="second")
    select = f"SELECT customer_id, segment FROM delta.`{path}`"
    assert sql_rows(spark, f"{select} VERSION AS OF 0") == [(1, "champions"), (2, "lost")]
    assert sql_rows(spark, f"{select} VERSION AS OF 1") == [(1, "at_risk")]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    runs = [json.loads(h["userMetadata"])["run_id"] for h in history]
    assert runs == ["first", "second"]
    first_commit = history[0]["timestamp"]
    stamp = first_commit.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert sql_rows(spark, f"{select} TIMESTAMP AS OF '{stamp}'") == [
        (1, "champions"),
        (2, "lost"),
    ]


def test_change_data_feed_shows_a_rerun(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    """``table_changes`` after a rerun of one snapshot: the old rows deleted, the new inserted;
    deltalake reads the same feed."""
    path = str(tmp_path / "t")
    write(store, frame(spark, [(1, "champions"), (2, "lost")], D1), path, D1)
    write(store, frame(spark, [(3, "loyal")], D2), path, D2)
    write(store, frame(spark, [(1, "at_risk"), (2, "lost")], D1), path, D1)
    changes = sql_rows(
        spark,
        "SELECT _commit_version, _change_type, customer_id, segment "
        f"FROM table_changes_by_path('{path}', 1)",
    )
    assert changes == [
        (1, "insert", 3, "loyal"),
        (2, "delete", 1, "champions"),
        (2, "delete", 2, "lost"),
        (2, "insert", 1, "at_risk"),
        (2, "insert", 2, "lost"),
    ]
    feed = pa.table(DeltaTable(path).load_cdf(starting_version=1).read_all()).to_pylist()
    rs = sorted((r["_commit_version"], r["_change_type"], r["customer_id"]) for r in feed)
    assert rs == [(v, t, c) for v, t, c, _ in changes]


def test_every_reader_reads_a_table_with_the_change_data_feed(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    write(store, frame(spark, [(1, "champions"), (2, "lost")], D1), path, D1)
    table = DeltaTable(path)
    assert table.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert table.protocol().min_reader_version == 1  # no reader feature a warehouse may lack
    want = [(1, "champions"), (2, "lost")]
    arrow = pa.table(table.to_pyarrow_table(columns=["customer_id", "segment"]))
    assert sorted(tuple(r.values()) for r in arrow.to_pylist()) == want
    con = duckdb_connection()
    got = con.execute(
        f"SELECT customer_id, segment FROM delta_scan('{path}') ORDER BY 1"
    ).fetchall()
    assert got == want


# ---- idempotent writes ---------------------------------------------------------------------


def test_a_retried_write_commits_once(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    txn = Txn("rfm-spark:airflow-run-7", 0)
    assert store.txn_version(path, txn) is None  # no table yet
    v0 = write(store, frame(spark, [(1, "champions")], D1), path, D1, txn=txn, run="attempt-1")
    # the retry computes other rows (say, late data arrived): the earlier commit stands
    again = write(store, frame(spark, [(9, "lost")], D1), path, D1, txn=txn, run="attempt-2")
    assert again == v0 == store.txn_version(path, txn) == store.version(path)
    assert sql_rows(spark, f"SELECT customer_id FROM delta.`{path}`") == [(1,)]
    # the run's next commit (another version of the same application id) lands
    v1 = write(store, frame(spark, [(2, "loyal")], D2), path, D2, txn=Txn(txn.app_id, 1))
    assert v1 == v0 + 1
    # another run (key) rewrites the snapshot as usual
    other = write(store, frame(spark, [(9, "lost")], D1), path, D1, txn=Txn("rfm-spark:run-8"))
    assert other == v1 + 1
    assert [h["metadata"]["run_id"] for h in store.history(path)][-1] == "attempt-1"


# ---- OPTIMIZE and VACUUM -------------------------------------------------------------------


def test_optimize_compacts_and_vacuum_lists_only_old_files(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    rows = [(i, "champions" if i % 2 else "lost") for i in range(40)]
    df = frame(spark, rows, D1).repartition(4)  # four small files
    write(store, df, path, D1)
    before = len(DeltaTable(path).file_uris())
    metrics = store.optimize(path, zorder_by=["segment", "customer_id"])
    assert before >= 2 and metrics["files_removed"] == before and metrics["files_added"] == 1
    assert len(DeltaTable(path).file_uris()) == 1
    assert sql_rows(spark, f"SELECT customer_id, segment FROM delta.`{path}`") == sorted(rows)
    # the replaced files are younger than any retention: nothing to delete yet
    assert store.vacuum(path, retain_hours=720, dry_run=True) == []
    assert os.path.isdir(path)


# ---- without the connector -------------------------------------------------------------------


@pytest.mark.slow
def test_without_the_connector_a_run_stops_with_one_line(demo: Path, tmp_path: Path) -> None:
    env = fast_jvm_env()
    env["RFM_SPARK_JARS_DIR"] = str(tmp_path / "no-jars-here")
    proc = subprocess.run(
        segment_command(demo, tmp_path / "wh", "2026-10-01"),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
    assert "no Delta Lake connector" in line and "make install" in line and "--packages" in line
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "wh" / "customer_segments").exists()
