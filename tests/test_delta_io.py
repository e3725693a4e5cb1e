"""Conformance tests of the Delta table stores (rfm_spark.io.store).

Every backend must pass the same tests: the connector (``spark``, the default) and the delta-rs
fallback. Results are checked with independent readers: ``deltalake`` (delta-rs) and
DuckDB's ``delta_scan``, loaded offline from the ``duckdb-extension-delta`` package.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import ConcurrentWriteError, TableError
from rfm_spark.io.deltars import DeltaRsStore
from rfm_spark.io.deltars import commit as deltars_commit
from rfm_spark.io.deltars import schema as deltars_schema
from rfm_spark.io.deltars import staging as deltars_staging
from rfm_spark.io.layout import spark_fields
from rfm_spark.io.spark_delta import SparkDeltaStore
from rfm_spark.io.store import TableStore, open_store
from rfm_spark.session import has_delta_extension

D1 = datetime.date(2024, 1, 31)
D2 = datetime.date(2024, 2, 14)
UTC = datetime.timezone.utc

SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.LongType()),
        T.StructField("segment", T.StringType()),
        T.StructField("monetary", T.DoubleType()),
        T.StructField("last_ts", T.TimestampType()),
    ]
)


def _ts(day: int, hour: int = 0) -> datetime.datetime:
    return datetime.datetime(2024, 1, day, hour, 30, 15, 123456, tzinfo=UTC)


def rows_d1() -> list[tuple]:
    return [(1, "champions", 120.5, _ts(3)), (2, "lost", None, None), (3, "loyal", 80.0, _ts(5, 7))]


def rows_d2() -> list[tuple]:
    return [(1, "at_risk", 99.0, _ts(10)), (4, "new_customers", 10.25, _ts(11, 23))]


def frame(spark: SparkSession, rows: list[tuple], day: datetime.date) -> DataFrame:
    """Rows of SCHEMA plus a literal snapshot_date column (as the pipeline sets it)."""
    return spark.createDataFrame(rows, SCHEMA).withColumn("snapshot_date", F.lit(day))


def expected(spark: SparkSession, *parts: tuple[list[tuple], datetime.date]) -> DataFrame:
    out = None
    for rows, day in parts:
        df = frame(spark, rows, day)
        out = df if out is None else out.unionByName(df)
    assert out is not None
    return out


def assert_same(actual: DataFrame, want: DataFrame) -> None:
    assert_df_equality(actual, want, ignore_row_order=True, ignore_nullable=True)


def arrow_rows(path: str) -> list[tuple]:
    """Rows as read by delta-rs, independent of Spark."""
    table = pa.table(DeltaTable(path).to_pyarrow_table())
    cols = ["customer_id", "segment", "monetary", "last_ts", "snapshot_date"]
    data = table.select(cols).to_pylist()
    return sorted((tuple(r[c] for c in cols) for r in data), key=lambda r: (r[4], r[0]))


def duckdb_rows(path: str) -> list[tuple]:
    """Rows as read by DuckDB's delta extension, loaded from the PyPI package (no download)."""
    duckdb = pytest.importorskip("duckdb")
    ext_pkg = pytest.importorskip("duckdb_extension_delta")
    ext = Path(ext_pkg.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    ext_file = ext / "delta.duckdb_extension"
    if not ext_file.exists():
        pytest.skip(f"no DuckDB delta extension for duckdb {duckdb.__version__} at {ext_file}")
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{ext_file}'")
    return con.execute(
        "SELECT customer_id, segment, monetary, last_ts, snapshot_date "
        f"FROM delta_scan('{path}') ORDER BY snapshot_date, customer_id"
    ).fetchall()


def as_rows(parts: list[tuple[list[tuple], datetime.date]]) -> list[tuple]:
    out = [(*r, day) for rows, day in parts for r in rows]
    return sorted(out, key=lambda r: (r[4], r[0]))


def disk_files(root: str) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
        if "_delta_log" not in d
    }


@pytest.fixture(params=["delta-rs", "spark"])
def store(request: pytest.FixtureRequest, spark: SparkSession) -> TableStore:
    return open_store(spark, request.param)


@pytest.fixture
def table_path(tmp_path: Path) -> str:
    return str(tmp_path / "customer_segments")


@pytest.fixture
def rs_store(spark: SparkSession) -> Iterator[DeltaRsStore]:
    yield DeltaRsStore(spark)


# ---- conformance: every backend --------------------------------------------------------------


def test_write_two_partitions_then_rewrite_one(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    new_d1 = [(3, "champions", 200.0, _ts(20)), (5, "promising", 1.0, None)]
    v0 = store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    v1 = store.write_partition(
        frame(spark, rows_d2(), D2),
        table_path,
        partition_column="snapshot_date",
        partition_value=D2,
    )
    v2 = store.write_partition(
        frame(spark, new_d1, D1), table_path, partition_column="snapshot_date", partition_value=D1
    )
    assert (v0, v1, v2) == (0, 1, 2)
    assert store.version(table_path) == 2
    assert store.exists(table_path)

    actual = store.read(table_path)
    assert actual.schema["snapshot_date"].dataType == T.DateType()
    assert actual.columns == [*SCHEMA.fieldNames(), "snapshot_date"]
    assert_same(actual, expected(spark, (new_d1, D1), (rows_d2(), D2)))

    want = as_rows([(new_d1, D1), (rows_d2(), D2)])
    assert arrow_rows(table_path) == want
    assert duckdb_rows(table_path) == want


def test_versions_and_metadata_in_history(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    for i, (rows, day) in enumerate([(rows_d1(), D1), (rows_d2(), D2), (rows_d1(), D1)]):
        version = store.write_partition(
            frame(spark, rows, day),
            table_path,
            partition_column="snapshot_date",
            partition_value=day,
            metadata={"run_id": f"run-{i}", "scheme": "rfm11", "note": 'quotes "and" ünïcode'},
        )
        assert version == i
    history = store.history(table_path)
    assert [h["version"] for h in history] == [2, 1, 0]
    for h in history:
        assert h["metadata"] == {
            "run_id": f"run-{h['version']}",
            "scheme": "rfm11",
            "note": 'quotes "and" ünïcode',
        }
        assert h["timestamp"].tzinfo is not None
        assert h["timestamp"].utcoffset() == datetime.timedelta(0)
        assert isinstance(h["operation"], str) and h["operation"]
    stamps = [h["timestamp"] for h in reversed(history)]
    assert stamps == sorted(stamps)


def test_time_travel_by_version_and_timestamp(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    store.write_partition(
        frame(spark, rows_d2(), D2),
        table_path,
        partition_column="snapshot_date",
        partition_value=D2,
    )
    v0 = expected(spark, (rows_d1(), D1))
    both = expected(spark, (rows_d1(), D1), (rows_d2(), D2))

    assert_same(store.read(table_path, version=0), v0)
    assert_same(store.read(table_path, version=1), both)

    ts = {h["version"]: h["timestamp"] for h in store.history(table_path)}
    assert_same(store.read(table_path, timestamp=ts[0]), v0)
    assert_same(store.read(table_path, timestamp=ts[1]), both)
    # naive datetimes are UTC
    naive = ts[0].astimezone(UTC).replace(tzinfo=None)
    assert_same(store.read(table_path, timestamp=naive), v0)
    assert_same(store.read(table_path, timestamp=ts[1] + datetime.timedelta(days=1)), both)

    with pytest.raises(TableError, match="before the first"):
        store.read(table_path, timestamp=ts[0] - datetime.timedelta(seconds=1))
    with pytest.raises(TableError, match="version"):
        store.read(table_path, version=7)
    with pytest.raises(TableError, match="not both"):
        store.read(table_path, version=0, timestamp=ts[0])


def test_schema_mismatch_raises_before_commit(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    before = disk_files(table_path)
    bad = frame(spark, rows_d2(), D2).withColumn("customer_id", F.col("customer_id").cast("string"))
    bad = bad.withColumn("extra", F.lit(1))
    with pytest.raises(TableError) as err:
        store.write_partition(bad, table_path, partition_column="snapshot_date", partition_value=D2)
    message = str(err.value)
    assert "customer_id" in message and "extra" in message
    assert "table stays at version 0" in message
    assert store.version(table_path) == 0
    assert disk_files(table_path) == before
    assert_same(store.read(table_path), expected(spark, (rows_d1(), D1)))


def test_a_new_column_is_added_to_an_older_table(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    """A later version of the product adds a column: the write adds it to the table, the rows
    written before read null, and the other readers see the same."""
    store.write_partition(
        frame(spark, rows_d1(), D1), table_path, partition_column="snapshot_date",
        partition_value=D1,
    )  # fmt: skip
    tags = F.create_map(F.lit("market"), F.col("segment"))
    newer = frame(spark, rows_d2(), D2).withColumn("attribute_segments", tags)
    version = store.write_partition(
        newer, table_path, partition_column="snapshot_date", partition_value=D2
    )
    assert version == 1
    got = {
        (r["snapshot_date"], r["customer_id"]): r["attribute_segments"]
        for r in store.read(table_path).collect()
    }
    assert got == {
        **{(D1, r[0]): None for r in rows_d1()},
        **{(D2, r[0]): {"market": r[1]} for r in rows_d2()},
    }
    read = DeltaTable(table_path).to_pandas()
    assert read.set_index("customer_id")["attribute_segments"].isna().sum() == len(rows_d1())
    assert duckdb_rows(table_path) == as_rows([(rows_d1(), D1), (rows_d2(), D2)])
    older = frame(spark, rows_d1(), D1)  # an older writer now misses the column: refused
    with pytest.raises(TableError, match=r"missing column\(s\): attribute_segments"):
        store.write_partition(older, table_path, partition_column="snapshot_date",
                              partition_value=D1)  # fmt: skip


def test_empty_partition_write(spark: SparkSession, store: TableStore, table_path: str) -> None:
    store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    store.write_partition(
        frame(spark, rows_d2(), D2),
        table_path,
        partition_column="snapshot_date",
        partition_value=D2,
    )
    version = store.write_partition(
        frame(spark, [], D1), table_path, partition_column="snapshot_date", partition_value=D1
    )
    assert version == 2
    assert_same(store.read(table_path), expected(spark, (rows_d2(), D2)))
    assert arrow_rows(table_path) == as_rows([(rows_d2(), D2)])
    assert_same(
        store.read(table_path, version=1), expected(spark, (rows_d1(), D1), (rows_d2(), D2))
    )


def test_first_write_empty_creates_table_with_schema(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    version = store.write_partition(
        frame(spark, [], D1), table_path, partition_column="snapshot_date", partition_value=D1
    )
    assert version == 0
    df = store.read(table_path)
    assert df.count() == 0
    assert [(f.name, f.dataType) for f in df.schema] == [
        *[(f.name, f.dataType) for f in SCHEMA],
        ("snapshot_date", T.DateType()),
    ]
    # the next non-empty write fits that schema
    assert (
        store.write_partition(
            frame(spark, rows_d1(), D1),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
        )
        == 1
    )


def test_write_partitions_replaces_several_in_one_commit(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    both = frame(spark, rows_d1(), D1).unionByName(frame(spark, rows_d2(), D2))
    assert (
        store.write_partitions(
            both, table_path, partition_column="snapshot_date", partition_values=[D1, D2]
        )
        == 0
    )
    new_d2 = [(9, "lost", 0.0, None)]
    version = store.write_partitions(
        frame(spark, new_d2, D2),
        table_path,
        partition_column="snapshot_date",
        partition_values=[D1, D2],
        metadata={"backfill": "true"},
    )
    assert version == 1
    assert_same(store.read(table_path), expected(spark, (new_d2, D2)))
    assert store.history(table_path)[0]["metadata"] == {"backfill": "true"}


def test_rows_outside_the_partition_are_rejected(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    with pytest.raises(TableError):
        store.write_partition(
            frame(spark, rows_d2(), D2),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
        )
    assert store.version(table_path) == 0
    with pytest.raises(TableError, match="no partition column 'snapshot_date'"):
        store.write_partition(
            spark.createDataFrame(rows_d1(), SCHEMA),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
        )


def test_table_properties_applied_at_creation(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    props = {
        "delta.logRetentionDuration": "interval 60 days",
        "delta.deletedFileRetentionDuration": "interval 30 days",
    }
    store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
        table_properties=props,
    )
    config = DeltaTable(table_path).metadata().configuration
    assert {k: config.get(k) for k in props} == props
    assert DeltaTable(table_path).metadata().partition_columns == ["snapshot_date"]
    with pytest.raises(TableError, match="delta"):
        store.write_partition(
            frame(spark, rows_d1(), D1),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
            table_properties={"owner": "me"},
        )


def test_missing_table(store: TableStore, tmp_path: Path) -> None:
    path = str(tmp_path / "nowhere")
    assert not store.exists(path)
    for call in (
        lambda: store.read(path),
        lambda: store.version(path),
        lambda: store.history(path),
    ):
        with pytest.raises(TableError, match="nowhere"):
            call()


# ---- open_store ------------------------------------------------------------------------------


def test_open_store_backends(spark: SparkSession) -> None:
    """The suite's session is built by the package with the jars `make install` fetched: the
    connector is the default (a missing jar fails here, it is never skipped)."""
    assert has_delta_extension(spark)
    auto = open_store(spark)
    assert isinstance(auto, TableStore) and isinstance(auto, SparkDeltaStore)
    assert auto.backend == "spark"
    rs = open_store(spark, "delta-rs")
    assert isinstance(rs, DeltaRsStore) and rs.backend == "delta-rs"
    with pytest.raises(TableError, match="auto, spark, delta-rs"):
        open_store(spark, "hive")


# ---- delta-rs backend specifics ----------------------------------------------------------------


def test_stats_and_layout_of_add_actions(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    df = frame(spark, rows_d1(), D1).repartition(1)
    rs_store.write_partition(df, table_path, partition_column="snapshot_date", partition_value=D1)
    actions = pa.table(DeltaTable(table_path).get_add_actions(flatten=True)).to_pylist()
    assert len(actions) == 1
    add = actions[0]
    assert add["path"].startswith("snapshot_date=2024-01-31/part-")
    assert add["partition.snapshot_date"] == D1
    assert add["num_records"] == 3
    assert (add["min.customer_id"], add["max.customer_id"]) == (1, 3)
    assert (add["min.segment"], add["max.segment"]) == ("champions", "loyal")
    assert (add["min.monetary"], add["max.monetary"]) == (80.0, 120.5)
    assert add["null_count.monetary"] == 1 and add["null_count.customer_id"] == 0
    # timestamps in stats have millisecond precision: min rounds down, max rounds up
    lo, hi = add["min.last_ts"], add["max.last_ts"]
    assert lo == datetime.datetime(2024, 1, 3, 0, 30, 15, 123000, tzinfo=lo.tzinfo)
    assert hi == datetime.datetime(2024, 1, 5, 7, 30, 15, 124000, tzinfo=hi.tzinfo)
    local = os.path.join(table_path, add["path"])
    assert os.path.getsize(local) == add["size_bytes"]
    protocol = DeltaTable(table_path).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)


def test_timestamps_are_micros_even_when_the_session_says_int96(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    """INT96 timestamps carry no statistics: the fallback's files never hold them, and the
    write does so without changing the caller's session."""
    key = "spark.sql.parquet.outputTimestampType"
    before = spark.conf.get(key)
    spark.conf.set(key, "INT96")
    try:
        rs_store.write_partition(
            frame(spark, rows_d1(), D1),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
        )
        assert spark.conf.get(key) == "INT96"
    finally:
        spark.conf.set(key, before)
    add = pa.table(DeltaTable(table_path).get_add_actions(flatten=True)).to_pylist()[0]
    footer = pq.ParquetFile(os.path.join(table_path, add["path"])).schema_arrow
    assert footer.field("last_ts").type == pa.timestamp("us", tz="UTC")
    assert add["min.last_ts"] is not None
    assert arrow_rows(table_path) == as_rows([(rows_d1(), D1)])


def test_nested_and_decimal_columns_round_trip(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    df = spark.sql(
        "SELECT CAST(12.34 AS DECIMAL(10,2)) AS amount, named_struct('r', 5, 'f', 4) AS scores, "
        "array(1, 2) AS tags, DATE'2023-12-01' AS first_purchase"
    ).withColumn("snapshot_date", F.lit(D1))
    rs_store.write_partition(df, table_path, partition_column="snapshot_date", partition_value=D1)
    assert_same(rs_store.read(table_path), df)
    add = pa.table(DeltaTable(table_path).get_add_actions(flatten=True)).to_pylist()[0]
    assert add["min.scores.r"] == 5
    assert str(add["max.amount"]) == "12.34"
    assert add["min.first_purchase"] == datetime.date(2023, 12, 1)
    # the spark backend's schema pre-check compares Spark types with Delta types the same way
    assert spark_fields(df.schema) == deltars_schema.delta_fields(DeltaTable(table_path).schema())


def test_string_partition_values_are_decoded(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    value = "a b:c/d%e=f"
    df = spark.createDataFrame([(1, "x")], "id long, v string").withColumn("part", F.lit(value))
    rs_store.write_partition(df, table_path, partition_column="part", partition_value=value)
    got = rs_store.read(table_path).collect()
    assert [(r.id, r.v, r.part) for r in got] == [(1, "x", value)]
    assert pa.table(DeltaTable(table_path).to_pyarrow_table()).column("part").to_pylist() == [value]
    (uri,) = DeltaTable(table_path).file_uris()
    assert os.path.exists(uri)


def test_root_path_with_spaces_and_glob_characters(
    spark: SparkSession, rs_store: DeltaRsStore, tmp_path: Path
) -> None:
    root = str(tmp_path / "my tables [x] {y} *" / "segments")
    rs_store.write_partition(
        frame(spark, rows_d1(), D1), root, partition_column="snapshot_date", partition_value=D1
    )
    version = rs_store.write_partition(
        frame(spark, rows_d2(), D2),
        "file://" + root,
        partition_column="snapshot_date",
        partition_value=D2,
    )
    assert version == 1 and len(rs_store.history(root)) == 2
    assert_same(rs_store.read(root), expected(spark, (rows_d1(), D1), (rows_d2(), D2)))
    with pytest.raises(TableError, match="without"):
        rs_store.write_partition(
            frame(spark, rows_d1(), D1),
            str(tmp_path / "what?"),
            partition_column="snapshot_date",
            partition_value=D1,
        )


def test_no_staging_leftovers_after_success_and_failure(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    rs_store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    assert not os.path.exists(os.path.join(table_path, deltars_staging.STAGING_DIR))
    files = disk_files(table_path)
    assert files and all(f.startswith("snapshot_date=2024-01-31/part-") for f in files)
    assert not any(f.endswith(".crc") or "_SUCCESS" in f for f in files)

    failing = frame(spark, rows_d2(), D2).withColumn(
        "segment",
        F.when(F.col("customer_id") > 0, F.raise_error(F.lit("boom"))).otherwise(F.col("segment")),
    )
    with pytest.raises(TableError, match="Parquet files"):
        rs_store.write_partition(
            failing, table_path, partition_column="snapshot_date", partition_value=D2
        )
    ntz = frame(spark, rows_d2(), D2).withColumn("last_ts", F.col("last_ts").cast("timestamp_ntz"))
    with pytest.raises(TableError, match="TIMESTAMP_NTZ"):
        rs_store.write_partition(
            ntz, table_path, partition_column="snapshot_date", partition_value=D2
        )
    assert not os.path.exists(os.path.join(table_path, deltars_staging.STAGING_DIR))
    assert disk_files(table_path) == files
    assert rs_store.version(table_path) == 0

    fresh = table_path + "_new"
    with pytest.raises(TableError, match="Parquet files"):
        rs_store.write_partition(
            failing, fresh, partition_column="snapshot_date", partition_value=D2
        )
    assert not os.path.exists(fresh)


def test_stale_staging_folders_are_removed(
    spark: SparkSession, rs_store: DeltaRsStore, table_path: str
) -> None:
    staging = Path(table_path) / deltars_staging.STAGING_DIR
    old, fresh = staging / "crashed-run", staging / "running-now"
    for folder in (old, fresh):
        (folder / "snapshot_date=2024-01-31").mkdir(parents=True)
        (folder / "snapshot_date=2024-01-31" / "part-0.parquet").write_bytes(b"x")
    long_ago = datetime.datetime.now().timestamp() - 7 * 3600
    for item in (old / "snapshot_date=2024-01-31", old):
        os.utime(item, (long_ago, long_ago))
    # an old top folder whose task folder is recent belongs to a long-running writer
    os.utime(fresh, (long_ago, long_ago))
    rs_store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    assert not old.exists()
    assert fresh.exists()  # may belong to a writer that is still running


def _land_foreign_write(table_path: str) -> None:
    """Another writer appends a file to partition D1 (a delta-rs append)."""
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("segment", pa.string()),
            ("monetary", pa.float64()),
            ("last_ts", pa.timestamp("us", tz="UTC")),
            ("snapshot_date", pa.date32()),
        ]
    )
    data = pa.table(
        {"customer_id": [77], "segment": ["foreign"], "monetary": [1.0], "last_ts": [None]},
        schema=pa.schema(list(schema)[:4]),
    ).append_column("snapshot_date", pa.array([D1], pa.date32()))
    write_deltalake(table_path, data, mode="append", partition_by=["snapshot_date"])


def test_commit_refreshes_a_stale_snapshot(
    spark: SparkSession,
    rs_store: DeltaRsStore,
    table_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rs_store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    original = DeltaRsStore._stats

    def stats_then_foreign_write(*args, **kwargs):  # runs after our DeltaTable was loaded
        _land_foreign_write(table_path)
        return original(*args, **kwargs)

    monkeypatch.setattr(DeltaRsStore, "_stats", staticmethod(stats_then_foreign_write))
    new_d1 = [(8, "loyal", 5.0, None)]
    version = rs_store.write_partition(
        frame(spark, new_d1, D1), table_path, partition_column="snapshot_date", partition_value=D1
    )
    assert version == 2  # 0 ours, 1 the foreign append, 2 ours
    assert arrow_rows(table_path) == as_rows([(new_d1, D1)])


def test_stale_commit_is_detected_after_the_fact(
    spark: SparkSession,
    rs_store: DeltaRsStore,
    table_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rs_store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    original = DeltaRsStore._stats

    def stats_then_foreign_write(*args, **kwargs):
        _land_foreign_write(table_path)
        return original(*args, **kwargs)

    monkeypatch.setattr(DeltaRsStore, "_stats", staticmethod(stats_then_foreign_write))
    # Simulate the race the refresh cannot close: the foreign commit lands after the refresh.
    monkeypatch.setattr(DeltaTable, "update_incremental", lambda self: None)
    # ... and a deltalake that rebases the stale commit silently (its default): the check after
    # the commit is the last line of defence
    real = deltars_commit.CommitProperties
    monkeypatch.setattr(
        deltars_commit,
        "CommitProperties",
        lambda **kw: real(**{**kw, "max_commit_retries": None}),
    )
    with pytest.raises(ConcurrentWriteError, match="other file"):
        rs_store.write_partition(
            frame(spark, [(8, "loyal", 5.0, None)], D1),
            table_path,
            partition_column="snapshot_date",
            partition_value=D1,
        )


@pytest.mark.parametrize("day", [D1, D2], ids=["existing-partition", "new-partition"])
def test_commit_on_a_stale_snapshot_is_retried_not_rebased(
    spark: SparkSession,
    rs_store: DeltaRsStore,
    table_path: str,
    monkeypatch: pytest.MonkeyPatch,
    day: datetime.date,
) -> None:
    """Another writer commits the same partition between our refresh and our commit (the race
    of two runs of one date, test_concurrency.py). deltalake's conflict check does not see it
    (it reads no predicate), so a rebased commit would keep both writes' files; the commit
    must fail and be retried on a fresh snapshot instead."""
    rs_store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    foreign = [(77, "foreign", 1.0, None)]
    original = DeltaTable.create_write_transaction
    raced: list[bool] = []

    def foreign_commit_first(self, *args, **kwargs):  # after our refresh, before our commit
        if not raced:
            raced.append(True)
            DeltaRsStore(spark).write_partition(
                frame(spark, foreign, day),
                table_path,
                partition_column="snapshot_date",
                partition_value=day,
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", foreign_commit_first)
    ours = [(8, "loyal", 5.0, None)]
    version = rs_store.write_partition(
        frame(spark, ours, day), table_path, partition_column="snapshot_date", partition_value=day
    )
    assert raced and version == 2  # 0 first write, 1 the foreign one, 2 ours
    want = [(ours, D1)] if day == D1 else [(rows_d1(), D1), (ours, D2)]
    assert arrow_rows(table_path) == as_rows(want)
