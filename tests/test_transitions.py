"""Tests of rfm_spark.transitions: snapshot choice, the from/to matrix, movers, output files and
the segment_transitions table.

Expected values come from an independent reader and join: the Delta table is read with
``deltalake`` (not with our store) and the two snapshots are merged with pandas.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from rfm_spark.cli.render import crosstab_table, matrix_table
from rfm_spark.errors import RfmError, TransitionError, TransitionUsageError, UsageError
from rfm_spark.io.exports import write_result
from rfm_spark.io.store import open_store
from rfm_spark.io.transitions_table import load_pairs, materialize
from rfm_spark.schemas import OUTPUT_SCHEMA
from rfm_spark.transitions import (
    GONE,
    NEW,
    NONE,
    SnapshotPair,
    available_snapshots,
    check_labels,
    movers,
    resolve_pair,
    transition_matrix,
    transition_pairs,
)

D0 = dt.date(2024, 1, 3)
D1 = dt.date(2024, 1, 17)
D2 = dt.date(2024, 1, 31)
SEGMENTS = ["Champions", "Can't Lose Them", 'At "Risk"', "need attention", "Lost, really"]


# ---- a small customer_segments table ---------------------------------------------------------


def seg_row(
    customer_id: str,
    day: dt.date,
    segment: str | None,
    cluster_id: int | None = None,
    cluster_name: str | None = None,
) -> tuple[Any, ...]:
    """One row in OUTPUT_SCHEMA shape (the feature columns are irrelevant here: null)."""
    values = {
        "customer_id": customer_id,
        "snapshot_date": day,
        "segment": segment,
        "cluster_id": cluster_id,
        "cluster_name": cluster_name,
        "run_id": f"run-{day}",
    }
    return tuple(values.get(f.name) for f in OUTPUT_SCHEMA.fields)


def snapshot_rows() -> dict[dt.date, list[tuple[Any, ...]]]:
    """D0: customers 0..149, no clusters. D1: 0..199. D2: 20..219 (0..19 gone, 200..219 new).

    Segment names carry quotes, commas and spaces; one customer has a null segment in D2, some
    clusters have no name (label = id) and one customer has no cluster in D2.
    """
    rng = random.Random(7)

    def cluster(i: int, day: dt.date) -> tuple[int | None, str | None]:
        if day == D2 and i == 151:
            return None, None
        cid = (i + (day.day // 14)) % 4
        return cid, (None if cid == 3 else f"cluster '{cid}'")

    rows: dict[dt.date, list[tuple[Any, ...]]] = {D0: [], D1: [], D2: []}
    for i in range(150):
        rows[D0].append(seg_row(f"c{i:03d}", D0, rng.choice(SEGMENTS)))
    for day, ids in ((D1, range(200)), (D2, range(20, 220))):
        for i in ids:
            segment = None if (day == D2 and i == 150) else rng.choice(SEGMENTS)
            rows[day].append(seg_row(f"c{i:03d}", day, segment, *cluster(i, day)))
    return rows


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("warehouse") / "customer_segments")
    every = [row for rows in snapshot_rows().values() for row in rows]
    open_store(spark).write_partitions(
        spark.createDataFrame(every, OUTPUT_SCHEMA),
        path,
        partition_column="snapshot_date",
        partition_values=[D0, D1, D2],
    )
    return path


@pytest.fixture(scope="module")
def segments(spark: SparkSession, table: str) -> Any:
    return open_store(spark).read(table)


def independent_pairs(path: str, earlier: dt.date, later: dt.date, by: str) -> pd.DataFrame:
    """from/to per customer: deltalake read + pandas outer merge, labelled as documented."""
    records = DeltaTable(path).to_pyarrow_table().to_pylist()

    def label(r: dict[str, Any]) -> str:
        if by == "cluster":
            value = r["cluster_name"] if r["cluster_name"] is not None else r["cluster_id"]
        else:
            value = r["segment"]
        return NONE if value is None else str(value)

    def side(day: dt.date) -> pd.DataFrame:
        return pd.DataFrame(
            [(r["customer_id"], label(r)) for r in records if r["snapshot_date"] == day],
            columns=["customer_id", "label"],
        )

    merged = side(earlier).merge(
        side(later), on="customer_id", how="outer", suffixes=("_from", "_to"), indicator=True
    )
    merged["from_segment"] = merged["label_from"].where(merged["_merge"] != "right_only", NEW)
    merged["to_segment"] = merged["label_to"].where(merged["_merge"] != "left_only", GONE)
    return merged[["customer_id", "from_segment", "to_segment"]]


def independent_counts(path: str, earlier: dt.date, later: dt.date, by: str) -> dict:
    pairs = independent_pairs(path, earlier, later, by)
    counts = pairs.groupby(["from_segment", "to_segment"]).size()
    return {key: int(n) for key, n in counts.items()}


# ---- resolve_pair ---------------------------------------------------------------------------


def test_resolve_pair_exact() -> None:
    pair = resolve_pair([D2, D0, D1], D2, 14)
    assert pair == SnapshotPair(earlier=D1, later=D2, requested_earlier=D1, note=None)
    assert pair.days == 14


def test_resolve_pair_falls_back_to_latest_before_with_note() -> None:
    pair = resolve_pair([D0, D1, D2], D2, 10)
    assert (pair.earlier, pair.later, pair.requested_earlier) == (D1, D2, dt.date(2024, 1, 21))
    assert pair.note is not None
    assert "2024-01-21" in pair.note and "2024-01-17" in pair.note and "14 days" in pair.note
    assert resolve_pair([D0, D1, D2], D2, 20).earlier == D0


def test_resolve_pair_no_earlier_snapshot_is_a_usage_error() -> None:
    with pytest.raises(TransitionUsageError) as err:
        resolve_pair([D0, D1, D2], D2, 30)
    msg = str(err.value)
    assert "no snapshot on or before 2024-01-01" in msg
    assert "earliest is 2024-01-03" in msg and "backfill" in msg and "--days 28" in msg
    assert isinstance(err.value, UsageError) and isinstance(err.value, TransitionError)
    assert err.value.exit_code == 2
    with pytest.raises(TransitionUsageError, match="earliest is 2024-01-03"):
        resolve_pair([D0], D0, 14)


def test_resolve_pair_as_of_without_snapshot_names_the_nearest() -> None:
    with pytest.raises(TransitionUsageError) as err:
        resolve_pair([D0, D1, D2], dt.date(2024, 1, 20), 14)
    assert "2024-01-17 before" in str(err.value) and "2024-01-31 after" in str(err.value)
    with pytest.raises(TransitionUsageError, match="2024-01-31 before"):
        resolve_pair([D0, D1, D2], dt.date(2024, 2, 14), 14)
    with pytest.raises(TransitionUsageError, match="2024-01-03 after"):
        resolve_pair([D0, D1, D2], dt.date(2023, 12, 1), 14)


def test_resolve_pair_rejects_bad_days_and_empty_tables() -> None:
    for days in (0, -3):
        with pytest.raises(TransitionUsageError, match="--days"):
            resolve_pair([D0, D1], D1, days)
    with pytest.raises(TransitionUsageError, match="no snapshots"):
        resolve_pair([], D1, 14)


# ---- pairs and matrix ----------------------------------------------------------------------


def test_available_snapshots(segments: Any) -> None:
    assert available_snapshots(segments) == [D0, D1, D2]


@pytest.mark.parametrize(("earlier", "later"), [(D1, D2), (D0, D2), (D0, D1)])
def test_matrix_counts_equal_an_independent_join(
    segments: Any, table: str, earlier: dt.date, later: dt.date
) -> None:
    pair = SnapshotPair(earlier=earlier, later=later, requested_earlier=earlier)
    rows = transition_matrix(transition_pairs(segments, pair)).collect()
    got = {(r["from_segment"], r["to_segment"]): r["customers"] for r in rows}
    assert got == independent_counts(table, earlier, later, "segment")


def test_matrix_shape_shares_and_order(segments: Any) -> None:
    pair = resolve_pair([D0, D1, D2], D2, 14)
    matrix = transition_matrix(transition_pairs(segments, pair))
    assert [(f.name, f.dataType) for f in matrix.schema.fields] == [
        ("from_segment", T.StringType()),
        ("to_segment", T.StringType()),
        ("customers", T.LongType()),
        ("share", T.DoubleType()),
    ]
    rows = matrix.collect()
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["from_segment"]] = totals.get(r["from_segment"], 0.0) + r["share"]
    assert all(abs(t - 1.0) < 1e-9 for t in totals.values())
    keys = [
        (r["from_segment"] == NEW, r["from_segment"], r["to_segment"] == GONE, r["to_segment"])
        for r in rows
    ]
    assert keys == sorted(keys)
    # 200 customers in D1 -> 200 from-rows not new; 20 new; 20 gone; one null segment
    assert sum(r["customers"] for r in rows if r["from_segment"] == NEW) == 20
    assert {r["to_segment"] for r in rows if r["from_segment"] == NEW} <= {*SEGMENTS, NONE}
    assert sum(r["customers"] for r in rows if r["to_segment"] == GONE) == 20
    assert sum(r["customers"] for r in rows if r["to_segment"] == NONE) == 1
    assert sum(r["customers"] for r in rows) == 220
    assert set(SEGMENTS) <= {r["from_segment"] for r in rows}


def test_pairs_one_row_per_customer_with_new_and_gone(segments: Any, table: str) -> None:
    pair = SnapshotPair(earlier=D1, later=D2, requested_earlier=D1)
    got = transition_pairs(segments, pair).toPandas().sort_values("customer_id")
    want = independent_pairs(table, D1, D2, "segment").sort_values("customer_id")
    assert list(got.columns) == ["customer_id", "from_segment", "to_segment"]
    assert got.values.tolist() == want.values.tolist()
    by_id = got.set_index("customer_id")
    assert by_id.loc["c000", "to_segment"] == GONE
    assert by_id.loc["c219", "from_segment"] == NEW
    assert by_id.loc["c150", "to_segment"] == NONE


def test_by_cluster_uses_name_then_id(segments: Any, table: str) -> None:
    pair = SnapshotPair(earlier=D1, later=D2, requested_earlier=D1)
    rows = transition_matrix(transition_pairs(segments, pair, by="cluster")).collect()
    got = {(r["from_segment"], r["to_segment"]): r["customers"] for r in rows}
    assert got == independent_counts(table, D1, D2, "cluster")
    labels = {r["from_segment"] for r in rows} | {r["to_segment"] for r in rows}
    assert {"3", "cluster '0'", NONE, NEW, GONE} <= labels


def test_by_cluster_without_clusters_is_a_usage_error(segments: Any) -> None:
    pair = SnapshotPair(earlier=D0, later=D2, requested_earlier=D0)
    with pytest.raises(TransitionUsageError, match=r"no clusters in snapshot 2024-01-03.*train"):
        transition_pairs(segments, pair, by="cluster")
    with pytest.raises(TransitionUsageError, match="--by"):
        transition_pairs(segments, pair, by="persona")


def test_load_pairs_reads_the_table_and_notes_fallbacks(spark: SparkSession, table: str) -> None:
    store = open_store(spark)
    pair, pairs = load_pairs(store, table, as_of=D2, days=10)
    assert (pair.earlier, pair.later) == (D1, D2) and pair.note
    assert pairs.count() == 220
    with pytest.raises(TransitionUsageError, match="nearest"):
        load_pairs(store, table, as_of=dt.date(2024, 1, 30))


# ---- movers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_frames(segments: Any, table: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    pair = SnapshotPair(earlier=D1, later=D2, requested_earlier=D1)
    pairs = transition_pairs(segments, pair).cache()
    yield pairs, independent_pairs(table, D1, D2, "segment")
    pairs.unpersist()


def ids(df: Any) -> list[str]:
    return [r["customer_id"] for r in df.collect()]


def test_movers_filters(pair_frames: tuple[Any, pd.DataFrame]) -> None:
    pairs, ref = pair_frames
    frm, to = "Can't Lose Them", 'At "Risk"'
    both = movers(pairs, from_segment=frm, to_segment=to)
    assert both.columns == ["customer_id", "from_segment", "to_segment"]
    want = ref[(ref.from_segment == frm) & (ref.to_segment == to)].customer_id
    assert ids(both) == sorted(want) and len(want) > 0

    left = ref[(ref.from_segment == frm) & (ref.to_segment != frm)].customer_id
    assert sorted(ids(movers(pairs, from_segment=frm, to_segment=None))) == sorted(left)
    entered = ref[(ref.to_segment == to) & (ref.from_segment != to)].customer_id
    assert sorted(ids(movers(pairs, from_segment=None, to_segment=to))) == sorted(entered)
    moved = ref[ref.from_segment != ref.to_segment].customer_id
    assert sorted(ids(movers(pairs, from_segment=None, to_segment=None))) == sorted(moved)
    stayed = ref[(ref.from_segment == frm) & (ref.to_segment == frm)].customer_id
    assert sorted(ids(movers(pairs, from_segment=frm, to_segment=frm))) == sorted(stayed)
    new = ref[ref.from_segment == NEW].customer_id
    assert sorted(ids(movers(pairs, from_segment=NEW, to_segment=None))) == sorted(new)
    assert len(new) == 20


def test_check_labels_names_the_known_ones(pair_frames: tuple[Any, pd.DataFrame]) -> None:
    rows = transition_matrix(pair_frames[0]).collect()
    check_labels(rows, from_segment='At "Risk"', to_segment=GONE)
    check_labels(rows, from_segment=None, to_segment=None)
    with pytest.raises(TransitionUsageError, match=r"--from 'Champs'.*'Champions'"):
        check_labels(rows, from_segment="Champs", to_segment=None)
    with pytest.raises(TransitionUsageError, match="--to"):
        check_labels(rows, from_segment=None, to_segment=NEW)


def test_terminal_tables(pair_frames: tuple[Any, pd.DataFrame]) -> None:
    rows = transition_matrix(pair_frames[0]).collect()
    headers, text_rows, align = matrix_table(rows)
    assert headers == ["from", "to", "customers", "share"] and align == "llrr"
    assert len(text_rows) == len(rows) and text_rows[0][3].endswith("%")
    headers, grid, align = crosstab_table(rows)
    assert headers[0] == "from \\ to" and headers[-2:] == [GONE, "total"]
    assert len(align) == len(headers) and grid[-1][0] == NEW
    assert sum(int(r[-1].replace(",", "")) for r in grid) == 220


# ---- output files --------------------------------------------------------------------------


def test_write_csv_and_parquet_round_trip(
    pair_frames: tuple[Any, pd.DataFrame], tmp_path: Path
) -> None:
    pairs, _ = pair_frames
    matrix = transition_matrix(pairs)
    want = matrix.toPandas()
    for name in ("m.csv", "out dir/m.PARQUET"):
        target = tmp_path / name
        write_result(matrix, str(target))
        got = (
            pd.read_csv(target, keep_default_na=False)
            if name.endswith(".csv")
            else pd.read_parquet(target)
        )
        assert got.columns.tolist() == ["from_segment", "to_segment", "customers", "share"]
        assert got[["from_segment", "to_segment"]].values.tolist() == (
            want[["from_segment", "to_segment"]].values.tolist()
        )
        assert got.customers.tolist() == want.customers.tolist()
        assert got.share.round(12).tolist() == want.share.round(12).tolist()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.PARQUET", "m.csv", "out dir"]

    moved = movers(pairs, from_segment=None, to_segment=None)
    target = tmp_path / "movers.csv"
    target.write_text("old content")
    write_result(moved, str(target))
    got = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert got.values.tolist() == [list(r) for r in moved.collect()]
    assert 'At "Risk"' in set(got.from_segment) and "Lost, really" in set(got.to_segment)


def test_write_empty_result_and_bad_suffix(
    pair_frames: tuple[Any, pd.DataFrame], tmp_path: Path
) -> None:
    empty = movers(pair_frames[0], from_segment="nobody", to_segment=None)
    write_result(empty, str(tmp_path / "e.parquet"))
    assert pd.read_parquet(tmp_path / "e.parquet").columns.tolist() == empty.columns
    write_result(empty, str(tmp_path / "e.csv"))
    assert (tmp_path / "e.csv").read_text() == "customer_id,from_segment,to_segment\n"
    with pytest.raises(TransitionUsageError, match=r"\.csv or \.parquet") as err:
        write_result(empty, str(tmp_path / "e.json"))
    assert err.value.exit_code == 2
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UsageError, match="folder"):
        write_result(empty, str(tmp_path / "dir.csv"))


# ---- segment_transitions -------------------------------------------------------------------


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    return str(tmp_path / "wh")


def test_materialize_keeps_one_matrix_per_earlier_snapshot_and_dimension(
    spark: SparkSession, segments: Any, warehouse: str
) -> None:
    store = open_store(spark)
    p14 = resolve_pair([D0, D1, D2], D2, 14)
    p28 = resolve_pair([D0, D1, D2], D2, 28)
    seg14 = transition_matrix(transition_pairs(segments, p14))
    materialize(store, warehouse, seg14, p14, "run-a")
    materialize(store, warehouse, transition_matrix(transition_pairs(segments, p28)), p28, "run-b")
    clu = transition_matrix(transition_pairs(segments, p14, by="cluster"))
    materialize(store, warehouse, clu, p14, "run-c", by="cluster")
    version = materialize(store, warehouse, seg14, p14, "run-a2")  # rerun replaces run-a
    assert version == 3

    got = DeltaTable(f"{warehouse}/segment_transitions").to_pandas()
    assert got.columns.tolist() == [
        "as_of",
        "earlier_snapshot",
        "from_segment",
        "to_segment",
        "customers",
        "share",
        "dimension",
        "run_id",
    ]
    runs: dict[tuple[str, str, str], set[str]] = {}
    for rec in got.to_dict("records"):
        key = (str(rec["as_of"]), str(rec["earlier_snapshot"]), rec["dimension"])
        runs.setdefault(key, set()).add(rec["run_id"])
    assert runs == {
        (str(D2), str(D1), "segment"): {"run-a2"},
        (str(D2), str(D0), "segment"): {"run-b"},
        (str(D2), str(D1), "cluster"): {"run-c"},
    }
    mine = {
        (rec["from_segment"], rec["to_segment"]): rec["customers"]
        for rec in got.to_dict("records")
        if rec["run_id"] == "run-a2"
    }
    assert mine == {(r["from_segment"], r["to_segment"]): r["customers"] for r in seg14.collect()}
    meta = store.history(f"{warehouse}/segment_transitions")[0]["metadata"]
    assert meta["run_id"] == "run-a2" and meta["dimension"] == "segment"


def test_errors_are_rfm_errors() -> None:
    assert issubclass(TransitionError, RfmError) and TransitionError.exit_code == 1
    assert TransitionUsageError.exit_code == 2


# ---- generated data end to end -----------------------------------------------------------------


@pytest.mark.slow
def test_transitions_on_generated_data(spark: SparkSession, tmp_path: Path) -> None:
    from rfm_spark.config import Config
    from rfm_spark.io.demo_data import generate
    from rfm_spark.pipeline import run_segment
    from rfm_spark.progress import Progress

    end = dt.date(2024, 6, 1)
    generate(spark, str(tmp_path / "demo"), customers=400, days=450, end_date=end, seed=11)
    config = Config().with_overrides(
        {
            "warehouse": str(tmp_path / "wh"),
            "input.path": str(tmp_path / "demo" / "transactions"),
        }
    )
    later, earlier = end, end - dt.timedelta(days=14)
    for day in (earlier, later):
        run_segment(spark, config, day, progress=Progress("t", quiet=True))
    store = open_store(spark)
    pair, pairs = load_pairs(store, config.table_path(), as_of=later, days=14)
    assert (pair.earlier, pair.note) == (earlier, None)
    rows = transition_matrix(pairs).collect()
    got = {(r["from_segment"], r["to_segment"]): r["customers"] for r in rows}
    assert got == independent_counts(config.table_path(), earlier, later, "segment")
    assert sum(got.values()) >= 300
    assert any(f != t for f, t in got)  # some customers moved in two weeks
