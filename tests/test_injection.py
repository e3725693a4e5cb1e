"""User strings never become SQL text (issue 5, item 5).

Segment names from a scheme YAML, input column names mapped with ``input.columns``, a
``scoring.partition_by`` attribute column and the ``--from`` / ``--to`` labels of transitions all
hold quotes, backticks, semicolons and ``' OR '1'='1`` style text. They must come back unchanged
and every filter must select exactly the customers an independent pandas computation selects.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.cli import main
from rfm_spark.clustering import assign_clusters
from rfm_spark.config import Config
from rfm_spark.io.store import open_store
from rfm_spark.io.transitions_table import load_pairs
from rfm_spark.pipeline import run_backfill
from rfm_spark.progress import Progress
from rfm_spark.segments import assign_segments, load_scheme
from rfm_spark.sqltext import exact_col
from rfm_spark.sqltext import quote as quote_identifier
from rfm_spark.transitions import GONE, NEW, movers, transition_matrix

D0 = dt.date(2025, 3, 1)
D1 = D0 + dt.timedelta(days=14)

# segment names that break naive SQL text: quotes of both kinds, backticks, a semicolon with a
# comment, a tautology, a backslash, commas and non-ASCII text
LOSE = "Can't Lose Them"
DROP = 'Drop"; DROP TABLE x; --'
TAUT = "' OR '1'='1"
TICK = "`back`tick` \\ name"
SEMI = 'semi;colon, "quoted" 顧客'
SCHEME = {
    "name": "awkward 'names'",
    "axes": ["r", "f"],
    "bins": 3,
    "segments": {
        LOSE: {"ranges": [{"r": [1, 1], "f": [3, 3]}]},
        DROP: {"ranges": [{"r": [1, 1], "f": [1, 2]}]},
        TICK: {"ranges": [{"r": [2, 2]}]},
        TAUT: {"ranges": [{"r": [3, 3], "f": [1, 2]}]},
        SEMI: {"codes": [33]},
    },
}

# input columns (mapped with input.columns) and the partition_by attribute
CUSTOMER = "Cust No"
ORDER = 'Order "ID"'
TS = "sold at; DROP TABLE t; --"
AMOUNT = "net € 'amount'"
ATTR = "country 'code'; --"


def expected_segment_of(r: int, f: int) -> str:
    """The scheme above, enumerated by hand from its ranges (not through build_scheme)."""
    for name, rule in SCHEME["segments"].items():
        for rng in rule.get("ranges", []):
            lo_r, hi_r = rng.get("r", [1, 3])
            lo_f, hi_f = rng.get("f", [1, 3])
            if lo_r <= r <= hi_r and lo_f <= f <= hi_f:
                return name
        if int(f"{r}{f}") in rule.get("codes", []):
            return name
    raise AssertionError((r, f))


# ---- data -----------------------------------------------------------------------------------


def transactions() -> pd.DataFrame:
    """40 customers, purchases on random days in the 120 days before D1 (one order a row)."""
    rng = random.Random(5)
    rows = []
    for c in range(40):
        for k in range(rng.randint(1, 6)):
            day = D1 - dt.timedelta(days=rng.randint(1, 120))
            rows.append(
                {
                    CUSTOMER: f"c{c:02d}",
                    ORDER: f"o{c:02d}-{k}",
                    TS: dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc),
                    AMOUNT: round(rng.uniform(1, 300), 2),
                }
            )
    return pd.DataFrame(rows)


def customers() -> pd.DataFrame:
    """Attributes of customers 0..34 (35..39 have no row: null group); two hold a null."""
    values = ["DE", "FR 'x'", "it's; --", None]
    return pd.DataFrame(
        {
            "customer_id": [f"c{c:02d}" for c in range(35)],
            ATTR: [values[c % 4] if c not in (3, 7) else None for c in range(35)],
        }
    )


def write(df: pd.DataFrame, path: Path) -> None:
    """Parquet as pyarrow writes it (any column name), timestamps in microseconds."""
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, coerce_timestamps="us")


def expected_snapshot(tx: pd.DataFrame, attrs: pd.DataFrame, day: dt.date) -> pd.Series:
    """customer_id -> segment by the documented rules, in pandas: features of the window
    [day - 365, day), ntile(3) per group (larger buckets first: numpy's array_split) over
    ``recency_days DESC, customer_id`` (R) and ``frequency, customer_id`` (F)."""
    start, end = (pd.Timestamp(d, tz="UTC") for d in (day - dt.timedelta(365), day))
    t = tx[(tx[TS] < end) & (tx[TS] >= start)]
    feats = t.groupby(CUSTOMER).agg(last=(TS, "max"), frequency=(ORDER, "nunique"))
    feats["recency_days"] = [(day - ts.date()).days for ts in feats["last"]]
    feats = feats.reset_index().rename(columns={CUSTOMER: "customer_id"})
    feats = feats.merge(attrs, on="customer_id", how="left")
    feats["group"] = feats[ATTR].map(lambda v: ("v", v) if isinstance(v, str) else ("null",))
    scores: dict[str, dict[str, int]] = {"r": {}, "f": {}}
    for _, grp in feats.groupby("group"):
        orders = {
            "r": grp.sort_values(["recency_days", "customer_id"], ascending=[False, True]),
            "f": grp.sort_values(["frequency", "customer_id"]),
        }
        for axis, ordered in orders.items():
            for bucket, ids in enumerate(np.array_split(ordered["customer_id"].to_numpy(), 3)):
                for cid in ids:
                    scores[axis][cid] = bucket + 1
    return pd.Series(
        {
            cid: expected_segment_of(scores["r"][cid], scores["f"][cid])
            for cid in feats["customer_id"]
        }
    ).sort_index()


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two snapshots (D0, D1) segmented by a backfill from awkwardly named inputs."""
    root = tmp_path_factory.mktemp("injection")
    tx, attrs = transactions(), customers()
    write(tx, root / "tx.parquet")
    write(attrs, root / "customers.parquet")
    scheme_path = root / "scheme.yaml"
    scheme_path.write_text(
        yaml.safe_dump(SCHEME, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    warehouse = root / "warehouse"
    config = Config().with_overrides(
        {
            "warehouse": str(warehouse),
            "input.path": str(root / "tx.parquet"),
            "input.customers_path": str(root / "customers.parquet"),
            "input.columns": {
                "customer_id": CUSTOMER,
                "order_id": ORDER,
                "order_ts": TS,
                "amount": AMOUNT,
            },
            "scoring.bins": 3,
            "scoring.partition_by": [ATTR],
            "segments.scheme": str(scheme_path),
        }
    )
    run_backfill(spark, config, [D0, D1], progress=Progress("test", quiet=True))
    table = DeltaTable(config.table_path()).to_pandas()
    snaps = {
        day: table[table["snapshot_date"].astype(str) == day.isoformat()]
        .set_index("customer_id")["segment"]
        .sort_index()
        for day in (D0, D1)
    }
    expected = {day: expected_snapshot(tx, attrs, day) for day in (D0, D1)}
    return {
        "config": config,
        "warehouse": warehouse,
        "scheme_path": scheme_path,
        "snaps": snaps,
        "expected": expected,
        "tmp": root,
    }


def expected_pairs(built: dict[str, Any]) -> pd.DataFrame:
    a, b = built["expected"][D0], built["expected"][D1]
    joined = pd.concat([a.rename("from_segment"), b.rename("to_segment")], axis=1)
    return joined.fillna({"from_segment": NEW, "to_segment": GONE})


# ---- tests ------------------------------------------------------------------------------------


def test_scheme_names_survive_yaml_and_assignment(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SCHEME, allow_unicode=True, sort_keys=False), encoding="utf-8")
    scheme = load_scheme(str(path))
    assert scheme.segments == (LOSE, DROP, TICK, TAUT, SEMI)
    assert scheme.name == "awkward 'names'"
    rows = [(r, f, 1) for r, f in itertools.product(range(1, 4), repeat=2)]
    df = spark.createDataFrame(rows, "r_score int, f_score int, m_score int")
    got = {
        (r["r_score"], r["f_score"]): r["segment"]
        for r in assign_segments(df, scheme=scheme).collect()
    }
    assert got == {(r, f): expected_segment_of(r, f) for r, f, _ in rows}


def test_pipeline_keeps_names_and_segments_like_pandas(built: dict[str, Any]) -> None:
    for day in (D0, D1):
        got, expected = built["snaps"][day], built["expected"][day]
        assert got.to_dict() == expected.to_dict(), day
    seen = set(built["snaps"][D0]) | set(built["snaps"][D1])
    assert seen <= set(SCHEME["segments"]) and len(seen) >= 4  # names unchanged, most in use


def test_transition_filters_with_quoted_labels(spark: SparkSession, built: dict[str, Any]) -> None:
    store = open_store(spark)
    pair, pairs = load_pairs(store, built["config"].table_path(), as_of=D1, days=14)
    assert (pair.earlier, pair.later) == (D0, D1)
    pairs = pairs.cache()
    exp = expected_pairs(built)
    matrix = {
        (r["from_segment"], r["to_segment"]): r["customers"]
        for r in transition_matrix(pairs).collect()
    }
    assert matrix == exp.groupby(["from_segment", "to_segment"]).size().to_dict()
    names = [*SCHEME["segments"], NEW, GONE]
    moved = [(f, t) for f in names for t in names if (f, t) in matrix and f != t]
    stayed = [(f, t) for f in names for t in names if (f, t) in matrix and f == t]
    asked = [*moved[:2], *stayed[:1], (DROP, None), (None, TAUT), ("' OR 1=1 --", None)]
    assert moved and stayed  # the data moves some customers between quoted names
    for frm, to in asked:
        got = movers(pairs, from_segment=frm, to_segment=to).collect()
        sel = exp
        if frm is not None:
            sel = sel[sel["from_segment"] == frm]
        if to is not None:
            sel = sel[sel["to_segment"] == to]
        if frm is None or to is None:
            sel = sel[sel["from_segment"] != sel["to_segment"]]
        assert sorted(
            (r["customer_id"], r["from_segment"], r["to_segment"]) for r in got
        ) == sorted((cid, row.from_segment, row.to_segment) for cid, row in sel.iterrows()), (
            frm,
            to,
        )
    pairs.unpersist()


def test_cli_transitions_and_export_with_quoted_names(
    built: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--warehouse", str(built["warehouse"]), "--quiet"]
    exp = expected_pairs(built)
    moved = exp[(exp["from_segment"] != exp["to_segment"])]
    moved = moved[
        moved["from_segment"].isin(SCHEME["segments"])
        & moved["to_segment"].isin(SCHEME["segments"])
    ]
    frm, to = moved.groupby(["from_segment", "to_segment"]).size().idxmax()
    out = built["tmp"] / "movers.csv"
    args = ["transitions", "--as-of", D1.isoformat(), "--days", "14", "--from", frm, "--to", to]
    assert main([*args, "--output", str(out), *common]) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    want = exp[(exp["from_segment"] == frm) & (exp["to_segment"] == to)]
    assert sorted(map(tuple, got[["customer_id", "from_segment", "to_segment"]].values)) == sorted(
        (cid, frm, to) for cid in want.index
    )
    # an unknown label that looks like SQL is a usage error naming the known labels
    assert main(["transitions", "--as-of", D1.isoformat(), "--from", "x' OR '1'='1", *common]) == 2
    assert "is not a label" in capsys.readouterr().err

    export = built["tmp"] / "targets.csv"
    assert (
        main(
            [
                "export",
                "--snapshot-date",
                D1.isoformat(),
                "--segment",
                DROP,
                "--segment",
                TAUT,
                "--output",
                str(export),
                *common,
            ]
        )
        == 0
    )
    rows = pd.read_csv(export, dtype=str, keep_default_na=False)
    expected = built["expected"][D1]
    assert sorted(zip(rows["customer_id"], rows["segment"], strict=True)) == sorted(
        (cid, seg) for cid, seg in expected.items() if seg in (DROP, TAUT)
    )


def test_exact_column_names_with_dots_and_backticks(spark: SparkSession) -> None:
    names = ["a.b", "x`y", "`", "it's", 'say "hi"', "p; DROP TABLE t; --"]
    assert quote_identifier("x`y") == "`x``y`"
    df = spark.createDataFrame([tuple(range(len(names)))], [f"c{i}" for i in range(len(names))])
    df = df.toDF(*names)
    assert df.select(*[exact_col(n).alias(f"v{i}") for i, n in enumerate(names)]).first() == tuple(
        range(len(names))
    )
    # assign_clusters without a model keeps every column as it is
    rows = assign_clusters(df, None).collect()
    assert rows[0].asDict() == {
        **dict(zip(names, range(len(names)), strict=True)),
        "cluster_id": None,
        "cluster_name": None,
    }


def test_input_and_partition_columns_with_dots_and_backticks(
    spark: SparkSession, tmp_path: Path
) -> None:
    tx = transactions().rename(columns={CUSTOMER: "cust.no", AMOUNT: "net`amount"})
    attrs = customers().rename(columns={ATTR: "geo.country `iso`"})
    write(tx, tmp_path / "tx.parquet")
    write(attrs, tmp_path / "c.parquet")
    scheme_path = tmp_path / "scheme.yaml"
    scheme_path.write_text(yaml.safe_dump(SCHEME, allow_unicode=True, sort_keys=False))
    config = Config().with_overrides(
        {
            "warehouse": str(tmp_path / "wh"),
            "input.path": str(tmp_path / "tx.parquet"),
            "input.customers_path": str(tmp_path / "c.parquet"),
            "input.columns": {
                "customer_id": "cust.no",
                "order_id": ORDER,
                "order_ts": TS,
                "amount": "net`amount",
            },
            "scoring.bins": 3,
            "scoring.partition_by": ["geo.country `iso`"],
            "segments.scheme": str(scheme_path),
        }
    )
    run_backfill(spark, config, [D1], progress=Progress("test", quiet=True))
    table = DeltaTable(config.table_path()).to_pandas().set_index("customer_id")["segment"]
    attrs_plain = attrs.rename(columns={"geo.country `iso`": ATTR})
    tx_plain = tx.rename(columns={"cust.no": CUSTOMER, "net`amount": AMOUNT})
    assert table.sort_index().to_dict() == expected_snapshot(tx_plain, attrs_plain, D1).to_dict()
