"""Attribute segments: the rules' validation, the transform against hand-worked rows, and the
whole path on generated data (segment with --attributes, then crosstab) against pandas over the
files and deltalake's read of the table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import html5lib
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.attributes import (
    AttributeRules,
    assign_attributes,
    crosstab,
    load_attribute_rules,
)
from rfm_spark.cli import main
from rfm_spark.errors import ConfigError

SNAPSHOT = dt.date(2026, 11, 23)
RULES = """\
name: test
dimensions:
  age_band: {column: age, bands: {young: 18, middle: 40, senior: 65}}
  market:
    column: country
    groups: {dach: [DE, AT], west: [FR, GB]}
    otherwise: other
  lifestyle:
    column: interests
    groups: {active: [outdoor, fitness], homebody: [books]}
    otherwise: none_given
  basket: {column: avg_order_value, bands: {small: 0, large: 50}}
  gender: {column: gender}
"""


def rules_file(tmp_path: Path, text: str = RULES) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("middle: 40", "middle: 10"), "strictly ascending lower bounds"),
        (("west: [FR, GB]", "west: [FR, DE]"), "value 'DE' is in groups 'dach' and 'west'"),
        (("  gender: {column: gender}", "  gender: {column: gender, otherwise: x}"), "goes with"),
        (("column: age,", "colum: age,"), "unknown key 'dimensions.age_band.colum'"),
        (("  gender:", "  2gender:"), "identifiers"),
        (("homebody: [books]", "homebody: []"), "at least one value"),
    ],
)
def test_bad_rules_name_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = RULES.replace(*change)
    assert text != RULES
    with pytest.raises(ConfigError, match="invalid attribute rules") as raised:
        load_attribute_rules(rules_file(tmp_path, text))
    assert message in str(raised.value)


def test_builtin_rules_and_unknown_names() -> None:
    profile = load_attribute_rules("profile")
    assert {"age_band", "market", "lifestyle", "basket"} <= set(profile.dimensions)
    assert "avg_order_value" not in profile.customer_columns()  # from the snapshot
    with pytest.raises(ConfigError, match="neither built-in"):
        load_attribute_rules("profil")


def test_rules_on_hand_worked_rows(spark: SparkSession, tmp_path: Path) -> None:
    rules = load_attribute_rules(rules_file(tmp_path))
    snapshot = spark.createDataFrame(
        [("a", 10.0), ("b", 75.5), ("c", 50.0), ("d", None)],
        "customer_id string, avg_order_value double",
    )
    customers = spark.createDataFrame(
        [("a", 17, "DE", ["books", "outdoor"], "f"), ("b", 40, "GB", [], "m"),
         ("c", 70, "US", None, None)],
        "customer_id string, age int, country string, interests array<string>, gender string",
    )  # fmt: skip
    got = {
        r["customer_id"]: r["attribute_segments"]
        for r in assign_attributes(snapshot, rules, customers).collect()
    }
    assert got == {
        # 17 is below the first band: no age band; the first group any tag is in wins
        "a": {"market": "dach", "lifestyle": "active", "basket": "small", "gender": "f"},
        "b": {"age_band": "middle", "market": "west", "lifestyle": "none_given",
              "basket": "large"} | {"gender": "m"},
        "c": {"age_band": "senior", "market": "other", "basket": "large"},  # nulls: no entry
        "d": {},  # no customers row, no average order
    }  # fmt: skip
    alone = assign_attributes(snapshot, rules, None)  # no customers table: snapshot rules only
    assert {r["customer_id"]: r["attribute_segments"] for r in alone.collect()}["b"] == {
        "basket": "large"
    }
    assert assign_attributes(snapshot, rules, None).columns == [*snapshot.columns,
                                                                 "attribute_segments"]  # fmt: skip
    bad = AttributeRules.model_validate(
        {"name": "x", "dimensions": {"shoe": {"column": "shoe_size"}}}
    )
    with pytest.raises(ConfigError, match="no column 'shoe_size'"):
        assign_attributes(snapshot, bad, customers)


def expected_profile(customers: pd.DataFrame, snapshot: pd.DataFrame) -> pd.DataFrame:
    """The built-in profile rules written again with pandas: one column per dimension."""
    c = customers.set_index("customer_id")
    out = snapshot.set_index("customer_id")[["segment", "avg_order_value"]].join(c, how="left")
    ages = [(65, "65+"), (50, "50-64"), (35, "35-49"), (25, "25-34"), (18, "18-24")]
    out["age_band"] = [next((n for b, n in ages if a >= b), None) for a in out["age"]]
    markets = {"DE": "dach", "AT": "dach", "CH": "dach", "GB": "uk_ie", "IE": "uk_ie",
               "FR": "france", "NL": "benelux", "BE": "benelux", "LU": "benelux",
               "ES": "iberia", "PT": "iberia", "SE": "nordics", "NO": "nordics",
               "DK": "nordics", "FI": "nordics", "US": "north_america", "CA": "north_america"}  # fmt: skip
    out["market"] = out["country"].map(lambda x: markets.get(x, "rest_of_world"))
    groups = [("active", {"outdoor", "fitness", "travel"}), ("trend", {"tech", "fashion"}),
              ("homebody", {"home_garden", "books", "food"})]  # fmt: skip
    out["lifestyle"] = [
        next((g for g, tags in groups if tags & set(i)), "no_interests") for i in out["interests"]
    ]
    baskets = [(100, "large"), (30, "medium"), (0, "small")]  # null or below 0: none
    out["basket"] = [
        next((n for b, n in baskets if v >= b), None) if pd.notna(v) else None
        for v in out["avg_order_value"].astype(float)
    ]
    out["channel"] = out["preferred_channel"]
    return out


def test_segment_with_profile_then_crosstab(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wh = ["--warehouse", str(tmp_path / "wh"), "--quiet"]
    seg = ["segment", "--snapshot-date", str(SNAPSHOT), "--input", str(demo / "transactions")]
    seg += ["--customers-input", str(demo / "customers"), "--attributes", "profile"]
    assert main([*seg, *wh]) == 0
    table = DeltaTable(str(tmp_path / "wh" / "customer_segments")).to_pandas()
    got = pd.DataFrame(
        [dict(m) for m in table["attribute_segments"]], index=table["customer_id"]
    ).sort_index()
    want = expected_profile(pd.read_parquet(demo / "customers"), table)
    dims = ["age_band", "gender", "market", "channel", "lifestyle", "basket"]

    def filled(frame: pd.DataFrame) -> pd.DataFrame:  # a missing entry and a None alike
        return frame.astype(object).fillna("(none)")

    pd.testing.assert_frame_equal(
        filled(got[dims]), filled(want.loc[got.index, dims]), check_names=False
    )

    # a CSV export holds the map as JSON text
    out = ["export", "--snapshot-date", str(SNAPSHOT), "--output", str(tmp_path / "all.csv")]
    assert main([*out, *wh]) == 0
    exported = pd.read_csv(tmp_path / "all.csv", dtype=str).set_index("customer_id")
    as_json = exported["attribute_segments"].map(json.loads)
    assert as_json.to_dict() == {c: dict(m) for c, m in zip(table["customer_id"],
                                 table["attribute_segments"], strict=True)}  # fmt: skip

    capsys.readouterr()
    ct = ["crosstab", "--snapshot-date", str(SNAPSHOT), "--by", "market"]
    assert main([*ct, "--output", str(tmp_path / "ct.csv"), *wh]) == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(tmp_path / "ct.csv")
    pairs = want.groupby(["segment", "market"]).size()
    assert dict(zip(zip(written["segment"], written["attribute"], strict=True),
                    written["customers"], strict=True)) == pairs.to_dict()  # fmt: skip
    champions = pairs["champions"]
    line = next(x for x in printed.splitlines() if x.startswith("champions "))
    assert line.split()[-1] == f"{champions.sum():,}"
    assert main([*ct[:-1], "shoe_size", *wh]) == 2
    assert "no attribute dimension 'shoe_size'; it has age_band, basket" in capsys.readouterr().err

    # the report shows the same grid: each cell's customers, and its share of the segment
    page = tmp_path / "report.html"
    assert main(["report", "--snapshot-date", str(SNAPSHOT), "--out", str(page), *wh]) == 0
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    doc = html5lib.parse(page.read_text())
    grid = doc.find(".//h:table[@id='attributes-market']", ns)
    assert grid is not None
    markets = ["".join(th.itertext()) for th in grid.findall(".//h:thead/h:tr/h:th", ns)][1:-1]
    shown = {}
    for tr in grid.findall(".//h:tbody/h:tr", ns):
        cells = ["".join(td.itertext()) for td in tr.findall("h:td", ns)]
        for market, cell in zip(markets, cells[1:-1], strict=True):
            count, share = cell.split()
            total = pairs[cells[0]].sum()
            assert share == f"({int(count.replace(',', '')) / total:.0%})"
            if count != "0":
                shown[cells[0], market] = int(count.replace(",", ""))
    assert shown == pairs.to_dict()


def test_crosstab_counts_none_for_missing_dimensions(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("a", "champions", {"market": "dach"}, 10.0), ("b", "champions", None, 5.0),
         ("c", "lost", {"age_band": "65+"}, 1.0)],
        "customer_id string, segment string, attribute_segments map<string,string>, "
        "monetary double",
    )  # fmt: skip
    got = {
        (r["segment"], r["attribute"]): r["customers"] for r in crosstab(rows, "market").collect()
    }
    assert got == {("champions", "dach"): 1, ("champions", "(none)"): 1, ("lost", "(none)"): 1}


def test_behaviour_on_hand_worked_rows(spark: SparkSession) -> None:
    from rfm_spark.behaviour import behaviour

    row = "struct<channel:string,product_id:string>"
    rows = spark.createDataFrame(
        [("a", 10.0, ("web", "p1")), ("a", 20.0, ("app", "p2")), ("a", 5.0, ("app", "p3")),
         ("a", -6.0, ("web", "p2")), ("b", 8.0, ("store", "p1")), ("c", -3.0, ("web", "p1"))],
        f"customer_id string, amount double, _row {row}",
    )  # fmt: skip
    products = spark.createDataFrame(
        [("p1", "garden"), ("p2", "kitchen"), ("p3", "garden")],
        "product_id string, category string",
    )
    wanted = ["order_channel", "top_category", "category_count", "return_share"]
    got = {r["customer_id"]: r.asDict() for r in behaviour(rows, wanted, products).collect()}
    # purchases only for channel and category; returns against the gross spend
    assert got["a"] == {"customer_id": "a", "order_channel": "app", "top_category": "garden",
                        "category_count": 2.0, "return_share": pytest.approx(6 / 35)}  # fmt: skip
    assert got["b"]["return_share"] == 0.0 and got["b"]["order_channel"] == "store"
    assert got["c"]["return_share"] is None and got["c"]["order_channel"] is None  # only returns


BEHAVIOUR_RULES = """\
name: behaviour
dimensions:
  channel: {column: order_channel}
  category: {column: top_category}
  breadth: {column: category_count, bands: {narrow: 1, broad: 3}}
  returner: {column: return_share, bands: {keeper: 0, returner: 0.05}}
"""


def expected_behaviour(demo: Path, snapshot: dt.date) -> pd.DataFrame:
    """BEHAVIOUR_RULES written again with pandas over the raw rows of the snapshot's window."""
    tx = pd.read_parquet(demo / "transactions")
    tx["day"] = pd.to_datetime(tx["order_ts"], utc=True).dt.date
    tx = tx[(tx["day"] < snapshot) & (tx["day"] >= snapshot - dt.timedelta(days=365))]
    tx = tx.assign(amount=tx["amount"].astype(float))
    tx = tx.join(
        pd.read_parquet(demo / "products").set_index("product_id")["category"], on="product_id"
    )
    buys = tx[tx["amount"] > 0]

    def most(column: str) -> pd.Series:
        n = buys.groupby(["customer_id", column]).size().rename("n").reset_index()
        n = n.sort_values(["customer_id", "n", column], ascending=[True, False, True])
        return n.drop_duplicates("customer_id").set_index("customer_id")[column]

    want = pd.DataFrame({"channel": most("channel"), "category": most("category")})
    breadth = buys.groupby("customer_id")["category"].nunique()
    want["breadth"] = breadth.map(lambda n: "broad" if n >= 3 else "narrow")
    share = tx[tx["amount"] < 0].groupby("customer_id")["amount"].sum().abs().reindex(
        want.index, fill_value=0.0) / buys.groupby("customer_id")["amount"].sum()  # fmt: skip
    want["returner"] = share.map(lambda s: "returner" if s >= 0.05 else "keeper")
    return want


def test_behaviour_segments_equal_pandas_in_segment_and_backfill_runs(
    demo: Path, tmp_path: Path
) -> None:
    rules = rules_file(tmp_path, BEHAVIOUR_RULES)
    config = tmp_path / "c.yaml"
    config.write_text(f"input:\n  products_path: {demo / 'products'}\n")
    common = ["--input", str(demo / "transactions"), "--attributes", rules, "--config", str(config)]
    earlier = SNAPSHOT - dt.timedelta(days=14)
    runs = {
        "segment": ["segment", "--snapshot-date", str(SNAPSHOT)],
        "backfill": [
            "backfill",
            "--start",
            str(earlier),
            "--end",
            str(SNAPSHOT),
            "--step-days",
            "14",
        ],
    }
    for name, command in runs.items():
        wh = ["--warehouse", str(tmp_path / name), "--quiet"]
        assert main([*command, *common, *wh]) == 0
        table = DeltaTable(str(tmp_path / name / "customer_segments")).to_pandas()
        for snapshot in [SNAPSHOT] if name == "segment" else [earlier, SNAPSHOT]:
            part = table[table["snapshot_date"].astype(str) == str(snapshot)]
            got = pd.DataFrame(
                [dict(m) for m in part["attribute_segments"]], index=part["customer_id"]
            )
            want = expected_behaviour(demo, snapshot)
            shown = got.loc[want.index, list(want.columns)]
            pd.testing.assert_frame_equal(
                shown.astype(object), want.astype(object), check_names=False
            )
            only_returns = set(got.index) - set(want.index)
            assert only_returns == set(got[got.isna().all(axis=1)].index)
