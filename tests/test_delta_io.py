"""Tests of the Delta table store (rfm_spark.io.store), the connector through SQL and options.

Results are checked with independent readers: ``deltalake`` (delta-rs) and DuckDB's
``delta_scan``, loaded offline from the ``duckdb-extension-delta`` package.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.errors import TableError
from rfm_spark.io.store import TableStore, open_store
from rfm_spark.session import require_delta

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


@pytest.fixture
def store(spark: SparkSession) -> TableStore:
    return open_store(spark)


@pytest.fixture
def table_path(tmp_path: Path) -> str:
    return str(tmp_path / "customer_segments")


# ---- writes, history, time travel ------------------------------------------------------------


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


# ---- paths and values -------------------------------------------------------------------------


def test_string_partition_values_are_decoded(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    value = "a b:c/d%e=f"
    df = spark.createDataFrame([(1, "x")], "id long, v string").withColumn("part", F.lit(value))
    store.write_partition(df, table_path, partition_column="part", partition_value=value)
    got = store.read(table_path).collect()
    assert [(r.id, r.v, r.part) for r in got] == [(1, "x", value)]
    assert pa.table(DeltaTable(table_path).to_pyarrow_table()).column("part").to_pylist() == [value]


def test_root_path_with_spaces_and_glob_characters(
    spark: SparkSession, store: TableStore, tmp_path: Path
) -> None:
    root = str(tmp_path / "my tables [x] {y}" / "segments")
    store.write_partition(
        frame(spark, rows_d1(), D1), root, partition_column="snapshot_date", partition_value=D1
    )
    version = store.write_partition(
        frame(spark, rows_d2(), D2), root, partition_column="snapshot_date", partition_value=D2
    )
    assert version == 1 and len(store.history(root)) == 2
    assert_same(store.read(root), expected(spark, (rows_d1(), D1), (rows_d2(), D2)))
    assert arrow_rows(root) == as_rows([(rows_d1(), D1), (rows_d2(), D2)])


def test_a_rewrite_replaces_the_rows_another_writer_added(
    spark: SparkSession, store: TableStore, table_path: str
) -> None:
    """Another writer (delta-rs) appends to partition D1; rewriting D1 replaces its rows too,
    in one new version, and the other partitions keep theirs."""
    parts = [(rows_d1(), D1), (rows_d2(), D2)]
    store.write_partitions(
        expected(spark, *parts),
        table_path,
        partition_column="snapshot_date",
        partition_values=[D1, D2],
    )
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("segment", pa.string()),
            ("monetary", pa.float64()),
            ("last_ts", pa.timestamp("us", tz="UTC")),
            ("snapshot_date", pa.date32()),
        ]
    )
    foreign = pa.Table.from_pylist(
        [{"customer_id": 77, "segment": "foreign", "monetary": 1.0, "last_ts": None,
          "snapshot_date": D1}],
        schema=schema,
    )  # fmt: skip
    write_deltalake(table_path, foreign, mode="append", partition_by=["snapshot_date"])
    assert 77 in [r[0] for r in arrow_rows(table_path)]
    version = store.write_partition(
        frame(spark, rows_d1(), D1),
        table_path,
        partition_column="snapshot_date",
        partition_value=D1,
    )
    assert version == 2
    assert arrow_rows(table_path) == as_rows(parts)


# ---- open_store ------------------------------------------------------------------------------


def test_open_store_needs_the_connector(spark: SparkSession) -> None:
    """The suite's session is built by the package with the jars `make install` fetched: the
    connector is there (a missing jar fails here, it is never skipped)."""
    require_delta(spark)
    assert isinstance(open_store(spark), TableStore)
