"""Tables by name: ``output.schema`` names every table the product commits, a local command
keeps the names in the warehouse's Derby metastore, and the SQL server serves them over JDBC.

The fast tests run in the suite's session (its in-memory catalog). The slow ones start real
processes on 127.0.0.1: the commands of a named warehouse, then ``python -m rfm_spark.servers
sql`` (which runs ``rfm-spark register`` first), then the ``beeline`` that pyspark ships, whose
answers are compared with the tables read by ``deltalake`` and with pandas.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyspark
import pytest
import yaml
from _procs import cli_command, fast_jvm_env, kill_group
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.config import Config, HistorySettings, load_config
from rfm_spark.errors import ConfigError
from rfm_spark.io import catalog
from rfm_spark.io.store import open_store
from rfm_spark.schemas import OUTPUT_SCHEMA

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"
AS_OF, DAYS = dt.date(2026, 11, 23), 14  # the demo data's last snapshot (conftest)
EARLIER = AS_OF - dt.timedelta(days=DAYS)


# ---- the settings (no Spark) -----------------------------------------------------------------


def _config(tmp_path: Path, output: dict[str, str]) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"output": output}))
    return load_config(path)


def test_schema_and_catalog_keys(tmp_path: Path) -> None:
    config = _config(tmp_path, {"schema": "rfm", "catalog": "main"})
    assert (config.output.schema_name, config.output.catalog) == ("rfm", "main")
    assert config.with_overrides({"warehouse": "/w"}).output.schema_name == "rfm"
    found = catalog.naming(config.with_overrides({"warehouse": "/w/"}))
    assert found is not None
    assert found.name("customer_segments") == "`main`.`rfm`.`customer_segments`"
    assert found.label("quarantine") == "main.rfm.quarantine"
    assert catalog.naming(Config()) is None
    for bad, key in (({"schema": "r-m"}, "output.schema"), ({"catalog": "main"}, "catalog")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            _config(tmp_path, bad)


def test_local_metastore_settings(tmp_path: Path) -> None:
    conf = catalog.local_metastore(str(tmp_path / "wh"), {"spark.driver.defaultJavaOptions": "-X"})
    root = f"{tmp_path}/wh/_metastore"
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert conf[catalog.CONNECTION_URL] == f"jdbc:derby:;databaseName={root}/derby;create=true"
    assert conf["spark.sql.warehouse.dir"] == f"{root}/spark-warehouse"
    assert conf["spark.driver.defaultJavaOptions"] == f'-X "-Dderby.system.home={root}"'
    own = {"spark.sql.catalogImplementation": "in-memory"}
    assert catalog.local_metastore(str(tmp_path), own) == own
    with pytest.raises(ConfigError, match="on this machine's disk"):
        catalog.local_metastore("s3a://lake/rfm", {})


def test_servers_use_the_warehouse_metastore(tmp_path: Path) -> None:
    """With output.schema both servers keep their catalog in the warehouse's metastore; the
    SQL server listens on 127.0.0.1 only; without it the Connect server keeps Spark's own."""
    from rfm_spark.servers import SQL_SERVER, connect_command, sql_command

    config = Config().with_overrides({"warehouse": str(tmp_path), "output.schema": "rfm"})
    url = f"{catalog.CONNECTION_URL}=jdbc:derby:;databaseName={tmp_path}/_metastore/derby;"
    sql = sql_command(config, 10123)
    assert sql[sql.index("--class") + 1] == SQL_SERVER
    assert sql[sql.index("spark-internal") + 1 :] == [
        *("--hiveconf", "hive.server2.thrift.port=10123"),
        *("--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1"),
    ]
    for cmd in (sql, connect_command(config)):
        assert "spark.sql.catalogImplementation=hive" in cmd
        assert any(arg.startswith(url) for arg in cmd), cmd
    plain = connect_command(Config().with_overrides({"warehouse": str(tmp_path)}))
    assert not any("catalogImplementation" in arg or "derby" in arg for arg in plain)


def test_register_needs_a_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register", "--warehouse", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output.schema" in err, err


# ---- the store names its commits (the suite's session and catalog) ---------------------------


def _segments(spark: SparkSession, day: dt.date, n: int) -> Any:
    rows = [{"customer_id": f"c{i}", "snapshot_date": day, "segment": "lost"} for i in range(n)]
    return spark.createDataFrame(
        [tuple(r.get(f.name) for f in OUTPUT_SCHEMA.fields) for r in rows], OUTPUT_SCHEMA
    )


def _write(spark: SparkSession, path: Path, day: dt.date, n: int) -> None:
    open_store(spark).write_partition(
        _segments(spark, day, n),
        str(path),
        partition_column="snapshot_date",
        partition_value=day,
        table_properties=HistorySettings().table_properties(),
    )


def test_commits_are_named_and_never_repointed(spark: SparkSession, tmp_path: Path) -> None:
    """Tables committed under a named warehouse get their names; one written before is named
    by ``register_warehouse``; a name that points at another warehouse is refused."""
    schema = "rfm_catalog_test"
    day = dt.date(2026, 1, 5)
    _write(spark, tmp_path / "wh" / "model_versions", day, 2)  # before the naming
    config = Config().with_overrides({"warehouse": str(tmp_path / "wh"), "output.schema": schema})
    found = catalog.name_tables(config)
    assert found is not None
    try:
        _write(spark, tmp_path / "wh" / "customer_segments", day, 3)
        assert spark.table(f"{schema}.customer_segments").count() == 3
        assert not spark.catalog.tableExists(f"{schema}.model_versions")
        named = catalog.register_warehouse(spark, found)
        assert [(n, kept) for n, _, kept in named] == [
            (f"{schema}.customer_segments", True),
            (f"{schema}.model_versions", False),
        ]
        assert spark.table(f"{schema}.model_versions").count() == 2
        assert catalog.delta_tables(spark, str(tmp_path / "nothing")) == []

        other = catalog.naming(config.with_overrides({"warehouse": str(tmp_path / "o")}))
        assert other is not None
        with pytest.raises(ConfigError, match=r"already names the table at .*/wh/customer_seg"):
            catalog.register(spark, other, "customer_segments")
        assert spark.table(f"{schema}.customer_segments").count() == 3
    finally:
        catalog.forget(found)
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# ---- a named warehouse, the SQL server and beeline (real processes) --------------------------

# ``rfm-spark`` commands in one process (one JVM), each with io.catalog.name_tables called on
# its config before its session is built
NAMED_COMMANDS = """
import json, sys
from rfm_spark.cli import main
from rfm_spark.cli.runtime import config_from
from rfm_spark.io.catalog import name_tables

def run(args):
    name_tables(config_from(args, {}))
    return args.func(args)

for argv in json.loads(sys.argv[1]):
    code = main(argv, run=run)
    if code:
        sys.exit(code)
"""


def _commands(*commands: list[str], cwd: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NAMED_COMMANDS, json.dumps(list(commands))],
        capture_output=True,
        text=True,
        env=fast_jvm_env(),
        cwd=cwd,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen[Any], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the SQL server ended ({proc.returncode}): {log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(1)
    pytest.fail(f"the SQL server did not listen within {timeout} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def named(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two snapshots and their materialised transitions, written by commands of a warehouse
    whose config sets ``output.schema: rfm``."""
    folder = tmp_path_factory.mktemp("named")
    warehouse = folder / "warehouse"
    config = folder / "config.yaml"
    spark_conf = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
    config.write_text(
        yaml.safe_dump(
            {
                "spark": {"master": "local[1]", "conf": spark_conf},
                "warehouse": str(warehouse),
                "input": {"path": str(demo / "transactions")},
                "output": {"schema": "rfm"},
            }
        )
    )
    common = ["--config", str(config), "--quiet"]
    backfill = ["--start", str(EARLIER), "--end", str(AS_OF), "--step-days", str(DAYS)]
    _commands(
        ["backfill", *backfill, *common],
        ["transitions", "--as-of", str(AS_OF), "--days", str(DAYS), "--materialize", *common],
        cwd=folder,
    )
    return {"folder": folder, "warehouse": warehouse, "config": config}


@pytest.fixture(scope="module")
def sql_server(named: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``python -m rfm_spark.servers sql`` on a free port, stopped (its process group) after."""
    port = _free_port()
    log = named["folder"] / "server.log"
    out = named["folder"] / "server.out"
    cmd = [sys.executable, "-m", "rfm_spark.servers", "sql", "--port", str(port)]
    with log.open("w") as err, out.open("w") as stdout:
        proc = subprocess.Popen(
            [*cmd, "--config", str(named["config"])],
            stdout=stdout,
            stderr=err,
            env=fast_jvm_env(),
            cwd=named["folder"],
            start_new_session=True,
        )
    try:
        _wait_for_port(proc, port, log, timeout=300)
        yield {**named, "port": port, "registered": out.read_text()}
    finally:
        kill_group(proc)
        proc.wait(timeout=60)


SEGMENT_SIZES = (
    "SELECT segment, count(*) AS customers FROM rfm.customer_segments "
    f"WHERE snapshot_date = DATE'{AS_OF}' GROUP BY segment ORDER BY segment"
)


def transition_query() -> str:
    """docs/sql.md's Spark SQL transition matrix, by name, with literals for its markers (as
    the docs say to write it in a SQL shell)."""
    block = re.search(
        r"```sql\n-- cookbook: transition-matrix \(spark\)\n(.*?)```", DOC.read_text(), re.DOTALL
    )
    assert block, "docs/sql.md has no Spark SQL transition matrix"
    query = block[1].replace("delta.`/warehouse/customer_segments`", "rfm.customer_segments")
    return query.replace(":as_of", f"DATE'{AS_OF}'").replace(":days", str(DAYS))


def beeline(port: int, *queries: str) -> list[list[dict[str, str]]]:
    """Each query's rows, from one run of pyspark's ``beeline`` (CSV output)."""
    tool = Path(pyspark.__file__).parent / "bin" / "beeline"
    url = f"jdbc:hive2://127.0.0.1:{port}"
    text = "; ".join(q.strip().rstrip(";") for q in queries)
    args = ["--outputformat=csv2", "--silent=true", "-u", url, "-e", text]
    out = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, env=fast_jvm_env(), timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [re.sub(r"^\d+: jdbc:hive2://\S+> ?", "", line) for line in out.stdout.splitlines()]
    results: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for row in csv.reader(io.StringIO("\n".join(line for line in lines if line.strip()))):
        if row in (["segment", "customers"], ["from_segment", "to_segment", "customers", "share"]):
            header = row
            results.append([])
        elif header is not None:
            results[-1].append(dict(zip(header, row, strict=True)))
    assert len(results) == len(queries), out.stdout[-3000:]
    return results


def pandas_matrix(warehouse: Path) -> dict[tuple[str, str], tuple[int, float]]:
    """The transition matrix of docs/sql.md computed with pandas from the table."""
    df = DeltaTable(str(warehouse / "customer_segments")).to_pandas(
        columns=["customer_id", "snapshot_date", "segment"]
    )
    days = pd.to_datetime(df["snapshot_date"]).dt.date
    earlier = max(d for d in days.unique() if d <= AS_OF - dt.timedelta(days=DAYS))
    e = df[days == earlier][["customer_id", "segment"]]
    later = df[days == AS_OF][["customer_id", "segment"]]
    pairs = e.merge(later, on="customer_id", how="outer", suffixes=("_e", "_l"), indicator=True)
    frm = pairs["segment_e"].fillna("(none)").where(pairs["_merge"] != "right_only", "(new)")
    to = pairs["segment_l"].fillna("(none)").where(pairs["_merge"] != "left_only", "(gone)")
    counts = pd.DataFrame({"f": frm, "t": to}).groupby(["f", "t"]).size()
    totals = counts.groupby(level=0).transform("sum")
    return {k: (int(n), float(n / totals[k])) for k, n in counts.items()}


@pytest.mark.slow
def test_names_last_between_commands(sql_server: dict[str, Any]) -> None:
    """The server's ``register`` (a later process) found the names the commands made, and
    the metastore and its log stay under the warehouse."""
    lines = sql_server["registered"].splitlines()
    kept = {line.split()[0] for line in lines if line.split()[-1:] == ["kept"]}
    assert kept == {"rfm.customer_segments", "rfm.segment_transitions"}, lines
    assert (sql_server["warehouse"] / "_metastore" / "derby" / "service.properties").is_file()
    assert (sql_server["warehouse"] / "_metastore" / "derby.log").is_file()
    leftovers = {"derby.log", "metastore_db", "spark-warehouse"} & {
        p.name for p in sql_server["folder"].iterdir()
    }
    assert not leftovers


@pytest.mark.slow
def test_beeline_by_name_equals_the_tables(sql_server: dict[str, Any]) -> None:
    """Segment sizes and the docs' transition query over JDBC, against deltalake, pandas and
    the matrix ``rfm-spark transitions`` materialised."""
    sizes, matrix = beeline(sql_server["port"], SEGMENT_SIZES, transition_query())
    segments = DeltaTable(str(sql_server["warehouse"] / "customer_segments")).to_pandas(
        partitions=[("snapshot_date", "=", str(AS_OF))], columns=["segment"]
    )
    want_sizes = segments["segment"].value_counts().sort_index()
    assert [(r["segment"], int(r["customers"])) for r in sizes] == list(want_sizes.items())

    got = {
        (r["from_segment"], r["to_segment"]): (int(r["customers"]), float(r["share"]))
        for r in matrix
    }
    want = pandas_matrix(sql_server["warehouse"])
    assert {k: n for k, (n, _) in got.items()} == {k: n for k, (n, _) in want.items()}
    assert all(abs(got[k][1] - want[k][1]) < 1e-9 for k in want)
    assert any(k[0] == "(new)" for k in got) and any(k[1] == "(gone)" for k in got)
    product = DeltaTable(str(sql_server["warehouse"] / "segment_transitions")).to_pandas()
    product = product[(product["dimension"] == "segment") & (product["as_of"] == AS_OF)]
    assert {(r.from_segment, r.to_segment): int(r.customers) for r in product.itertuples()} == {
        k: n for k, (n, _) in got.items()
    }


@pytest.mark.slow
def test_metastore_in_use_is_one_line(sql_server: dict[str, Any]) -> None:
    """While the server has the metastore open, a local command stops with one line."""
    warehouse = str(sql_server["warehouse"])
    cmd = cli_command("register", "--config", str(sql_server["config"]), warehouse=warehouse)
    out = subprocess.run(cmd, capture_output=True, text=True, env=fast_jvm_env(), timeout=300)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "is open in another process" in lines[0] and "stop that process" in lines[0]
