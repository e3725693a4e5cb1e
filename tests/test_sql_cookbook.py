"""The queries of docs/sql.md run as documented and agree with rfm_spark.transitions.

Each cookbook query sits in a fenced block whose first line is a marker
``-- cookbook: <name> (<engine>)``. The test replaces the documented placeholder paths
(``/warehouse/<table>``) with a table written by our store, binds the documented parameters
(``$name`` in DuckDB, ``:name`` in Spark SQL) and compares the results with
``transition_matrix`` / ``movers`` (what ``rfm-spark transitions`` prints).

DuckDB's ``delta`` extension is loaded offline (tests/_duck.py). The Spark SQL queries run over
``delta.`path``` when the session has the Delta jars, else over a temporary view of the same
table (the SQL after the ``FROM`` is then the same text).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path
from typing import Any

import pytest
from _duck import duckdb_connection
from pyspark.sql import SparkSession

from rfm_spark.config import HistorySettings
from rfm_spark.io.store import open_store
from rfm_spark.io.transitions_table import load_pairs, materialize
from rfm_spark.schemas import OUTPUT_SCHEMA
from rfm_spark.transitions import GONE, NEW, SnapshotPair, movers, transition_matrix

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"
PLACEHOLDER = "/warehouse"
MARKER = re.compile(
    r"```(?:sql|python)\n(?:--|#) cookbook: (?P<name>[\w-]+) \((?P<engine>\w+)\)\n(?P<body>.*?)```",
    re.DOTALL,
)
D0, D1, D2 = dt.date(2024, 1, 3), dt.date(2024, 1, 17), dt.date(2024, 1, 31)
SEGMENTS = ["Champions", "Can't Lose Them", 'At "Risk"', "Lost, really", "need attention"]


def cookbook() -> dict[tuple[str, str], str]:
    """(name, engine) -> query text (marker line excluded)."""
    blocks = {(m["name"], m["engine"]): m["body"] for m in MARKER.finditer(DOC.read_text())}
    assert blocks, f"no cookbook blocks in {DOC}"
    return blocks


def test_cookbook_has_every_query() -> None:
    names = set(cookbook())
    for name in ("segment-sizes", "transition-matrix", "movers", "champions-leaving"):
        assert {(name, "spark"), (name, "duckdb")} <= names
    assert {("register", "spark"), ("register", "duckdb"), ("without-delta-jars", "python")} <= (
        names
    )
    assert ("changes-since", "spark") in names


def test_changes_since_a_version(spark: SparkSession, warehouse: str) -> None:
    """The change data feed from version 0: every row the one commit inserted, per snapshot."""
    got = spark_query(spark, "changes-since", warehouse, {"since_version": 0})
    want: dict[tuple[Any, ...], int] = {}
    for r in rows():
        key = (0, r[1], "insert")
        want[key] = want.get(key, 0) + 1
    assert got == [(*k, n) for k, n in sorted(want.items())]


def duck_params(query: str, values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in sorted(set(re.findall(r"\$([A-Za-z_]\w*)", query)))}


def spark_params(query: str, values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in sorted(set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", query)))}


# ---- the table ------------------------------------------------------------------------------


def rows() -> list[tuple[Any, ...]]:
    """Three snapshots; customers arrive and leave; names with quotes, commas and spaces."""
    rng = random.Random(3)
    out = []
    for day, ids in ((D0, range(0, 120)), (D1, range(10, 160)), (D2, range(25, 185))):
        for i in ids:
            values = {
                "customer_id": f"c{i:03d}",
                "snapshot_date": day,
                "segment": rng.choice(SEGMENTS),
                "run_id": f"run-{day}",
            }
            out.append(tuple(values.get(f.name) for f in OUTPUT_SCHEMA.fields))
    return out


@pytest.fixture(scope="module")
def warehouse(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    wh = str(tmp_path_factory.mktemp("cookbook") / "warehouse")
    open_store(spark).write_partitions(
        spark.createDataFrame(rows(), OUTPUT_SCHEMA),
        f"{wh}/customer_segments",
        partition_column="snapshot_date",
        partition_values=[D0, D1, D2],
        table_properties=HistorySettings().table_properties(),
    )
    return wh


@pytest.fixture(scope="module")
def duck(warehouse: str) -> Any:
    con = duckdb_connection()
    yield con
    con.close()


def duck_query(con: Any, name: str, warehouse: str, values: dict[str, Any]) -> list[tuple]:
    query = cookbook()[name, "duckdb"].replace(PLACEHOLDER, warehouse)
    return con.execute(query, duck_params(query, values)).fetchall()


def spark_query(
    spark: SparkSession, name: str, warehouse: str, values: dict[str, Any]
) -> list[tuple]:
    """Run a Spark SQL cookbook query over the Delta paths (the connector reads them)."""
    query = cookbook()[name, "spark"].replace(PLACEHOLDER, warehouse)
    return [tuple(r) for r in spark.sql(query, args=spark_params(query, values)).collect()]


_MATRICES: dict[tuple[str, dt.date, int], list[tuple]] = {}


def matrix_of(spark: SparkSession, warehouse: str, as_of: dt.date, days: int) -> list[tuple]:
    """What ``rfm-spark transitions --as-of D --days N`` computes (computed once per module)."""
    key = (warehouse, as_of, days)
    if key not in _MATRICES:
        store = open_store(spark)
        _, pairs = load_pairs(store, f"{warehouse}/customer_segments", as_of=as_of, days=days)
        _MATRICES[key] = [tuple(r) for r in transition_matrix(pairs).collect()]
    return _MATRICES[key]


def same_matrix(got: list[tuple], want: list[tuple]) -> None:
    assert [r[:3] for r in got] == [r[:3] for r in want]
    assert [float(r[3]) for r in got] == pytest.approx([r[3] for r in want], abs=1e-12)


# ---- the transition matrix --------------------------------------------------------------


@pytest.mark.parametrize("days", [14, 10, 28])  # exact, fallback to D1, exact D0
def test_duckdb_transition_matrix_equals_transitions(
    spark: SparkSession, warehouse: str, duck: Any, days: int
) -> None:
    values = {"as_of": D2, "days": days}
    want = matrix_of(spark, warehouse, D2, days)
    got = duck_query(duck, "transition-matrix", warehouse, values)
    same_matrix(got, want)
    assert any(r[0] == NEW for r in got) and any(r[1] == GONE for r in got)


def test_spark_sql_transition_matrix_equals_transitions(
    spark: SparkSession, warehouse: str
) -> None:
    want = matrix_of(spark, warehouse, D2, 10)
    got = spark_query(spark, "transition-matrix", warehouse, {"as_of": D2, "days": 10})
    same_matrix(got, want)


# ---- movers and sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frm", "to"), [("Can't Lose Them", 'At "Risk"'), (NEW, "Lost, really"), ("Champions", GONE)]
)
def test_movers_queries_equal_movers(
    spark: SparkSession, warehouse: str, duck: Any, frm: str, to: str
) -> None:
    store = open_store(spark)
    _, pairs = load_pairs(store, f"{warehouse}/customer_segments", as_of=D2, days=14)
    want = [tuple(r) for r in movers(pairs, from_segment=frm, to_segment=to).collect()]
    assert want
    values = {"as_of": D2, "days": 14, "from_segment": frm, "to_segment": to}
    assert duck_query(duck, "movers", warehouse, values) == want
    if frm == NEW:
        assert spark_query(spark, "movers", warehouse, values) == want


def test_segment_sizes(spark: SparkSession, warehouse: str, duck: Any) -> None:
    counts: dict[tuple[dt.date, str], int] = {}
    for r in rows():
        key = (r[1], r[14])  # snapshot_date, segment
        counts[key] = counts.get(key, 0) + 1
    for got in (
        duck_query(duck, "segment-sizes", warehouse, {}),
        spark_query(spark, "segment-sizes", warehouse, {}),
    ):
        assert {(d, s): n for d, s, n, _ in got} == counts
        assert [r[0] for r in got] == sorted(r[0] for r in got)
        per_day: dict[dt.date, float] = {}
        for d, _, _, share in got:
            per_day[d] = per_day.get(d, 0.0) + float(share)
        assert all(abs(v - 1) < 1e-9 for v in per_day.values())


# ---- materialised transitions, registration, reading without the jars ---------------------


def test_materialised_transitions_queries(spark: SparkSession, warehouse: str, duck: Any) -> None:
    store = open_store(spark)
    for as_of, earlier in ((D1, D0), (D2, D1)):
        pair = SnapshotPair(earlier=earlier, later=as_of, requested_earlier=earlier)
        columns = ["from_segment", "to_segment", "customers", "share"]
        matrix = spark.createDataFrame(matrix_of(spark, warehouse, as_of, 14), columns)
        materialize(store, warehouse, matrix, pair, f"run-{as_of}")
    want = []
    for as_of, earlier in ((D1, D0), (D2, D1)):
        left = [
            r
            for r in matrix_of(spark, warehouse, as_of, 14)
            if r[0] == "Champions" and r[1] != r[0]
        ]
        want.append((as_of, earlier, sum(r[2] for r in left), sum(r[3] for r in left)))
    values = {"days": 14, "from_segment": "Champions"}
    for got in (
        duck_query(duck, "champions-leaving", warehouse, values),
        spark_query(spark, "champions-leaving", warehouse, values),
    ):
        assert [r[:3] for r in got] == [r[:3] for r in want]
        assert [float(r[3]) for r in got] == pytest.approx([r[3] for r in want])


def test_duckdb_registration(warehouse: str, duck: Any) -> None:
    """The documented view and ATTACH (INSTALL / LOAD skipped: the extension is loaded)."""
    statements = cookbook()["register", "duckdb"].replace(PLACEHOLDER, warehouse).split(";")
    for statement in statements:
        text = "\n".join(
            line for line in statement.splitlines() if not line.strip().startswith("--")
        ).strip()
        if text and not text.upper().startswith(("INSTALL", "LOAD")):
            duck.execute(text)
    assert duck.execute("SELECT count(*) FROM customer_segments").fetchone() == (len(rows()),)


def test_spark_registration_with_delta_jars(spark: SparkSession, warehouse: str) -> None:
    for statement in cookbook()["register", "spark"].replace(PLACEHOLDER, warehouse).split(";"):
        text = "\n".join(
            line for line in statement.splitlines() if not line.strip().startswith("--")
        ).strip()
        if text:
            spark.sql(text)
    assert spark.table("rfm.customer_segments").count() == len(rows())


def test_reading_without_delta_jars(spark: SparkSession, warehouse: str) -> None:
    code = cookbook()["without-delta-jars", "python"]
    code = code.replace(PLACEHOLDER, warehouse).replace("2026-11-23", D2.isoformat())
    namespace: dict[str, Any] = {"spark": spark}
    exec(compile(code, str(DOC), "exec"), namespace)
    assert len(namespace["one"]) == sum(1 for r in rows() if r[1] == D2)
    assert spark.table("customer_segments").count() == len(rows())
    spark.catalog.dropTempView("customer_segments")
