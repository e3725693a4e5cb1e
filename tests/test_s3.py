"""End to end on an object store: the CLI (real processes) with the warehouse at ``s3a://``.

A moto S3 server on 127.0.0.1 stands in for S3. ``segment``, ``train`` and ``transitions`` run
as child processes through Spark's ``s3a`` file system (hadoop-aws + AWS SDK v2, loaded by
``build_spark(s3=True)`` because the warehouse is an ``s3a://`` URI); the tables are read back
with the ``deltalake`` package (object_store, an independent S3 client) and checked against a
local run of the same snapshot and against pandas.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _procs import cli_command, fast_jvm_env
from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

BUCKET = "rfm-lake"
WAREHOUSE = f"s3a://{BUCKET}/warehouse"
KEY, SECRET, REGION = "testing", "testing", "us-east-1"
EARLIER, LATER = dt.date(2026, 10, 18), dt.date(2026, 11, 1)
LOOKBACK = 365
# columns that must be equal customer by customer between the S3 run and the local run
COMPARED = [
    "recency_days",
    "frequency",
    "monetary",
    "purchase_days",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "segment",
    "score_group",
    "flag",
]


@dataclass(frozen=True)
class S3:
    endpoint: str  # http://127.0.0.1:PORT

    def spark_conf(self) -> list[str]:
        """The ``--spark-conf`` flags pointing s3a at the local server."""
        conf = {
            # a non-AWS endpoint; the http:// scheme is enough to turn TLS off
            "spark.hadoop.fs.s3a.endpoint": self.endpoint,
            # 127.0.0.1 has no per-bucket host names (BUCKET.127.0.0.1): path-style requests
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.access.key": KEY,
            "spark.hadoop.fs.s3a.secret.key": SECRET,
            # no region lookup (no instance metadata here); moto signs with any region
            "spark.hadoop.fs.s3a.endpoint.region": REGION,
            # fail fast instead of the default retry storm if the server is gone
            "spark.hadoop.fs.s3a.attempts.maximum": "2",
            "spark.hadoop.fs.s3a.retry.limit": "2",
        }
        return [a for k, v in conf.items() for a in ("--spark-conf", f"{k}={v}")]

    def storage_options(self) -> dict[str, str]:
        """The same server for deltalake (reads only: no locking or unsafe-rename option)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _require_jars() -> None:
    """``make install`` fetches both; their absence is a failure, never a skip."""
    from rfm_spark import jars

    s3 = jars.s3_artifact()
    assert jars.installed_jars(jars.delta_artifact()), "run 'make install' (Delta jars)"
    assert s3 is not None and jars.installed_jars(s3), "run 'make install' (hadoop-aws jars)"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """A moto S3 server on a free port of 127.0.0.1 with an empty bucket; stopped afterwards."""
    _require_jars()
    import moto.server as server_mod  # the dev extra installs moto[server]

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        store = S3(f"http://{host}:{port}")
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        server.stop()


def _child_env() -> dict[str, str]:
    """This environment minus any real AWS settings (profiles, keys, regions), fast JVM flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return fast_jvm_env(env)


def _cli(s3: S3, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*cli_command(*args, warehouse=WAREHOUSE), *s3.spark_conf()],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    command = " ".join(map(str, proc.args[3:5]))  # type: ignore[index]
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{out}\n{err}"
    return out


def _run(s3: S3, *args: str) -> str:
    return _wait(_cli(s3, *args))


def _snapshot(df: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return (
        df[df["snapshot_date"].astype(str) == day.isoformat()].set_index("customer_id").sort_index()
    )


def test_cli_on_s3a_warehouse_equals_local_run(
    spark: SparkSession, demo: Path, s3: S3, tmp_path: Path
) -> None:
    from deltalake import DeltaTable

    from rfm_spark.cli import main

    tx = str(demo / "transactions")

    # 1) the earlier snapshot on S3; meanwhile the later one locally, in this process, as the
    #    reference (a local warehouse, the same data and date)
    first = _cli(s3, "segment", "--snapshot-date", EARLIER.isoformat(), "--input", tx)
    local = tmp_path / "local"
    args = ["segment", "--snapshot-date", LATER.isoformat(), "--input", tx, "--quiet"]
    try:
        local_rc = main([*args, "--warehouse", str(local)])
    except BaseException:
        first.kill()
        first.communicate()
        raise
    out = _wait(first)
    assert local_rc == 0
    assert f"table {WAREHOUSE}/customer_segments version 0" in out

    # 2) train on it: the model is written to s3a://, its profiles to a Delta table there
    out = _run(s3, "train", "--snapshot-date", EARLIER.isoformat(), "--k", "3")
    assert "model v1 (kmeans, k=3" in out and f"saved at {WAREHOUSE}/models/rfm_clusters/v1" in out

    # 3) the later snapshot on S3: loads that model from s3a:// and assigns clusters
    out = _run(s3, "segment", "--snapshot-date", LATER.isoformat(), "--input", tx)
    assert "version 1" in out

    # 4) the 14-day transitions, kept in the segment_transitions table on S3
    out = _run(s3, "transitions", "--as-of", LATER.isoformat(), "--days", "14", "--materialize")
    assert f"segment transitions from {EARLIER} to {LATER}" in out
    assert "segment_transitions version 0" in out

    # read back with deltalake over its own S3 client
    opts = s3.storage_options()
    table = DeltaTable(f"{WAREHOUSE}/customer_segments", storage_options=opts)
    assert table.version() == 1 and table.metadata().partition_columns == ["snapshot_date"]
    remote = table.to_pandas()
    ours = _snapshot(remote, LATER)
    ref = _snapshot(DeltaTable(str(local / "customer_segments")).to_pandas(), LATER)

    # customer by customer the same as the local run
    assert len(ours) > 0 and ours.index.is_unique
    assert list(ours.index) == list(ref.index)
    for col in COMPARED:
        assert ours[col].tolist() == ref[col].tolist(), col

    # and the customers are those pandas finds in the lookback window
    frame = pd.read_parquet(tx, columns=["customer_id", "order_ts"])
    day = pd.to_datetime(frame["order_ts"], utc=True).dt.date
    in_window = (day >= LATER - dt.timedelta(days=LOOKBACK)) & (day < LATER)
    assert set(ours.index) == set(frame.loc[in_window, "customer_id"])

    # the model trained on S3 was loaded from S3 by the later run (the local one has none)
    assert ref["cluster_id"].isna().all()
    assert ours["cluster_id"].notna().all()
    assert set(ours["cluster_id"].astype(int)) <= {1, 2, 3}
    assert _snapshot(remote, EARLIER)["cluster_id"].isna().all()  # written before the training
    assert any(k.startswith("warehouse/models/rfm_clusters/v1/") for k in s3.keys("warehouse/"))
    profiles = DeltaTable(f"{WAREHOUSE}/cluster_profiles", storage_options=opts).to_pandas()
    assert sorted(profiles["cluster_id"].astype(int)) == [1, 2, 3]
    assert profiles["customers"].sum() == len(_snapshot(remote, EARLIER))

    # the materialised matrix equals pandas over the two snapshots read back
    a, b = _snapshot(remote, EARLIER), _snapshot(remote, LATER)
    joined = a[["segment"]].join(b[["segment"]], how="outer", lsuffix="_a", rsuffix="_b")
    joined = joined.fillna({"segment_a": "(new)", "segment_b": "(gone)"})
    expected = joined.groupby(["segment_a", "segment_b"]).size().to_dict()
    matrix = DeltaTable(f"{WAREHOUSE}/segment_transitions", storage_options=opts).to_pandas()
    assert set(matrix["earlier_snapshot"].astype(str)) == {EARLIER.isoformat()}
    assert set(matrix["as_of"].astype(str)) == {LATER.isoformat()}
    got = matrix.set_index(["from_segment", "to_segment"])["customers"].to_dict()
    assert got == expected
