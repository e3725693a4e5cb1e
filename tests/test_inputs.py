"""Reading transactions: formats, column mapping, clear errors; the Java check."""

from __future__ import annotations

import datetime as dt
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from rfm_spark.config import ColumnMapping, CsvOptions, InputSettings
from rfm_spark.errors import EnvironmentProblem, InputError, MissingColumnsError
from rfm_spark.io.inputs import read_transactions
from rfm_spark.spark_conf import check_java, java_major_version


def test_csv_with_mapping_and_timestamp_format(spark: SparkSession, tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text(
        "cust_no;sold_at;net_eur;store\n"
        " 17 ;23.11.2026 08:15;12.50;A\n"
        "18;not a date;3.00;B\n"
        "19;22.11.2026 23:59;abc;C\n"
    )
    settings = InputSettings(
        path=str(csv),
        format="csv",
        columns=ColumnMapping(
            customer_id="cust_no", order_id=None, order_ts="sold_at", amount="net_eur"
        ),
        csv=CsvOptions(delimiter=";", timestamp_format="dd.MM.yyyy HH:mm"),
    )
    df = read_transactions(spark, settings).select("customer_id", "order_id", "order_ts", "amount")
    rows = [r.asDict() for r in df.orderBy("customer_id").collect()]
    assert rows[0] == {
        "customer_id": "17",
        "order_id": None,
        "order_ts": dt.datetime(2026, 11, 23, 8, 15),
        "amount": Decimal("12.50"),
    }
    assert rows[1]["order_ts"] is None  # unparsable: null, and quarantined
    assert rows[2]["amount"] is None


def test_missing_column_names_missing_and_present(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "tx"
    spark.createDataFrame([("a", 1.0)], "customer_id string, amount double").write.parquet(
        str(path)
    )
    with pytest.raises(MissingColumnsError) as err:
        read_transactions(spark, InputSettings(path=str(path)))
    msg = str(err.value)
    assert "missing column(s) order_id (for order_id), order_ts (for order_ts)" in msg
    assert "present: customer_id, amount" in msg and "input.columns" in msg


def test_missing_path_and_no_input(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist; check --input"):
        read_transactions(spark, InputSettings(path=str(tmp_path / "nope")))
    with pytest.raises(InputError, match="no input given"):
        read_transactions(spark, InputSettings())


def test_wrong_customer_id_type(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "tx"
    spark.createDataFrame(
        [(1.5, "o", dt.datetime(2026, 1, 1), 1.0)],
        "customer_id double, order_id string, order_ts timestamp, amount double",
    ).write.parquet(str(path))
    with pytest.raises(InputError, match="has type double; expected a string or whole-number id"):
        read_transactions(spark, InputSettings(path=str(path)))


def test_delta_input(spark: SparkSession, tmp_path: Path) -> None:
    from rfm_spark.io.store import open_store

    df = spark.createDataFrame(
        [(7, "o1", dt.datetime(2026, 1, 1, 10), Decimal("9.99"), "2026-01-01")],
        "customer_id bigint, order_id string, order_ts timestamp, amount decimal(10,2), day string",
    )
    open_store(spark).write_partition(
        df, str(tmp_path / "tx"), partition_column="day", partition_value="2026-01-01"
    )
    got = read_transactions(
        spark, InputSettings(path=str(tmp_path / "tx"), format="delta")
    ).collect()
    assert [(r.customer_id, r.order_id, r.amount) for r in got] == [("7", "o1", Decimal("9.99"))]


def fake_java(tmp_path: Path, banner: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    exe = home / "bin" / "java"
    exe.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return home


@pytest.mark.parametrize(
    "banner, major",
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
    ],
)
def test_java_version_parsing(tmp_path: Path, banner: str, major: int) -> None:
    assert java_major_version(str(fake_java(tmp_path, banner) / "bin" / "java")) == major


def test_old_or_missing_java_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "11.0.2"')))
    with pytest.raises(EnvironmentProblem, match="Java 11 found, but Spark 4 needs Java 17"):
        check_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="Java was not found"):
        check_java()
    assert os.environ["PATH"] == str(tmp_path)


def test_parquet_from_pandas_with_nanosecond_timestamps(
    spark: SparkSession, tmp_path: Path
) -> None:
    """pandas writes TIMESTAMP(NANOS) by default, which Spark 4 alone refuses; the input reads
    them as timestamps (to the microsecond), naive and UTC-aware columns alike, and leaves a
    plain long column alone."""
    import pandas as pd
    import pyarrow.parquet as pq

    ts = pd.to_datetime(
        ["2026-11-20 08:15:00.123456789", "2026-11-21 23:59:59.000001999"], format="ISO8601"
    )
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "order_id": ["o1", "o2"],
            "order_ts": ts,
            "paid_at": ts.tz_localize("UTC"),
            "amount": [12.5, 3.0],
            "quantity": [1, 2],
        }
    )
    path = tmp_path / "pandas.parquet"
    frame.to_parquet(path)
    assert str(pq.read_schema(path).field("order_ts").type) == "timestamp[ns]"  # the case itself
    df = read_transactions(spark, InputSettings(path=str(path), format="parquet"))
    got = df.orderBy("customer_id").select("order_ts", "amount").collect()
    want = [t.floor("us").to_pydatetime() for t in ts]
    assert [r["order_ts"].replace(tzinfo=None) for r in got] == want
    raw = spark.read.parquet(str(path))
    from rfm_spark.io.inputs import nanos_as_timestamps

    types = dict(nanos_as_timestamps(raw).dtypes)
    assert (types["order_ts"], types["paid_at"], types["quantity"]) == (
        "timestamp",
        "timestamp",
        "bigint",
    )
