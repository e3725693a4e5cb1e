"""The HTML report: built from generated data, parsed strictly, its numbers checked against
aggregates computed independently (pandas over a deltalake read of the same table), and drawn
by a real headless Chromium without console messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import html5lib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from PIL import Image
from pyspark.sql import SparkSession

from rfm_spark.cli import main

D = dt.date(2026, 11, 23)
EARLIER = D - dt.timedelta(days=14)
NS = {"h": "http://www.w3.org/1999/xhtml"}
SECTIONS = [
    "headline",
    "segments",
    "rf-grid",
    "distributions",
    "transitions",
    "clusters",
    "post-analysis",
    "data-quality",
    "predictions",
    "attributes",
]


def with_bad_rows(demo: Path, out: Path) -> Path:
    """The demo transactions plus a file of three rows (in the window) without a customer id."""
    shutil.copytree(demo / "transactions", out)
    first = pq.read_table(sorted(out.glob("*.parquet"))[0])
    recent = pc.greater_equal(
        first["order_ts"], pa.scalar(dt.datetime(2026, 10, 1), first["order_ts"].type)
    )
    rows = first.filter(recent).slice(0, 3)
    column = rows.schema.get_field_index("customer_id")
    rows = rows.set_column(column, "customer_id", pa.nulls(3, rows.schema.field(column).type))
    pq.write_table(rows, out / "part-bad.parquet")
    return out


def write_scores(warehouse: Path) -> None:
    """customer_churn for every customer of D and customer_clv for every other one, as
    `churn score` and `clv score` would write them (values drawn at random)."""
    from deltalake import write_deltalake

    segments = DeltaTable(str(warehouse / "customer_segments")).to_pandas()
    ids = sorted(segments.loc[segments["snapshot_date"].astype(str) == str(D), "customer_id"])
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, len(ids))
    churn = pd.DataFrame({"customer_id": ids, "snapshot_date": D, "churn_probability": p,
                          "churn_risk": np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))})  # fmt: skip
    write_deltalake(str(warehouse / "customer_churn"), churn, partition_by=["snapshot_date"])
    half = ids[::2]
    clv = pd.DataFrame({"customer_id": half, "snapshot_date": D,
                        "p_alive": rng.uniform(0, 1, len(half)), "clv": rng.gamma(2, 50, len(half))})  # fmt: skip
    write_deltalake(str(warehouse / "customer_clv"), clv, partition_by=["snapshot_date"])


@pytest.fixture(scope="module")
def report(spark: SparkSession, demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two snapshots 14 days apart (the later one with k-means clusters and with three bad
    input rows), then the report."""
    warehouse = tmp_path_factory.mktemp("report")
    common = ["--warehouse", str(warehouse), "--quiet"]
    bad = with_bad_rows(demo, warehouse.parent / f"{warehouse.name}-input")
    for day in (EARLIER, D):
        source = demo / "transactions" if day == EARLIER else bad
        flags = ["--snapshot-date", day.isoformat(), "--input", str(source)]
        assert main(["segment", *flags, *common]) == 0
        if day == EARLIER:
            assert main(["train", "--snapshot-date", day.isoformat(), "--k", "4", *common]) == 0
    write_scores(warehouse)
    out = warehouse / "report.html"
    flags = ["--snapshot-date", D.isoformat(), "--out", str(out), "--outliers", "5"]
    assert main(["report", *flags, *common]) == 0
    return out


@pytest.fixture(scope="module")
def page(report: Path) -> object:
    return html5lib.HTMLParser(strict=True).parse(report.read_text())  # raises on a parse error


@pytest.fixture(scope="module")
def table(report: Path) -> pd.DataFrame:
    df = DeltaTable(str(report.parent / "customer_segments")).to_pandas()
    df["snapshot_date"] = df["snapshot_date"].astype(str)
    df["monetary"] = df["monetary"].astype(float)
    return df


def text(node: object) -> str:
    return re.sub(r"\s+", " ", "".join(node.itertext())).strip()  # type: ignore[attr-defined]


def number(s: str) -> float:
    return float(s.replace(",", "").replace("+", ""))


def section(page: object, name: str) -> object:
    found = page.find(f".//h:section[@id='{name}']", NS)  # type: ignore[attr-defined]
    assert found is not None, f"no section {name}"
    return found


def test_every_section_and_at_least_five_embedded_images(page: object) -> None:
    for name in SECTIONS:
        section(page, name)
    images = page.findall(".//h:img", NS)  # type: ignore[attr-defined]
    assert len(images) >= 5
    for img in images:
        src = img.get("src")
        assert src.startswith("data:image/png;base64,")  # embedded: no network needed
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert picture.format == "PNG" and min(picture.size) > 100
        assert img.get("alt")


def test_headline_and_segment_table_equal_pandas(page: object, table: pd.DataFrame) -> None:
    now = table[table["snapshot_date"] == D.isoformat()]
    before = table[table["snapshot_date"] == EARLIER.isoformat()]
    cards = {
        v.get("data-key"): number(text(v))
        for v in section(page, "headline").findall(".//h:div[@data-key]", NS)  # type: ignore[attr-defined]
    }
    assert cards["customers"] == len(now)
    assert cards["revenue"] == pytest.approx(now["monetary"].sum(), abs=0.01)
    assert cards["mean_monetary"] == pytest.approx(now["monetary"].mean(), abs=0.01)
    expected = now.groupby("segment").agg(
        customers=("customer_id", "size"), revenue=("monetary", "sum")
    )
    change = expected["customers"] - before.groupby("segment").size().reindex(
        expected.index
    ).fillna(0)
    rows = section(page, "segments").findall(".//h:tbody/h:tr", NS)  # type: ignore[attr-defined]
    assert sorted(r.get("data-segment") for r in rows) == sorted(expected.index)
    for r in rows:
        cells = [text(c) for c in r.findall("h:td", NS)]
        seg = r.get("data-segment")
        assert number(cells[1]) == expected.at[seg, "customers"]
        assert number(cells[3]) == pytest.approx(expected.at[seg, "revenue"], abs=0.01)
        assert number(cells[5]) == change[seg]


def test_largest_movement_equals_a_pandas_crosstab(page: object, table: pd.DataFrame) -> None:
    now = table[table["snapshot_date"] == D.isoformat()].set_index("customer_id")["segment"]
    then = table[table["snapshot_date"] == EARLIER.isoformat()].set_index("customer_id")["segment"]
    pairs = pd.concat([then.rename("a"), now.rename("b")], axis=1).fillna(
        {"a": "(new)", "b": "(gone)"}
    )
    moved = pairs[pairs["a"] != pairs["b"]].value_counts()
    first = text(section(page, "transitions").find(".//h:ul[@id='largest-moves']/h:li", NS))  # type: ignore[attr-defined]
    assert int(number(first.split()[0])) == moved.max()
    top = [pair for pair, n in moved.items() if n == moved.max()]
    words = {name: name.replace("_", " ").title() for pair in top for name in pair}
    assert any(
        (b == "(gone)" or words[b] in first) and (a == "(new)" or words[a] in first) for a, b in top
    )


def test_outliers_follow_the_stated_fence(page: object, table: pd.DataFrame) -> None:
    now = table[table["snapshot_date"] == D.isoformat()]
    post = section(page, "post-analysis")
    floor = number(text(post.find(".//h:span[@id='outlier-floor']", NS)))  # type: ignore[attr-defined]
    spend = now.loc[now["monetary"] > 0, "monetary"]
    q1, q3 = np.percentile(spend, [25, 75])
    assert floor == pytest.approx(q3 + 3 * (q3 - q1), rel=0.05)  # approximate quartiles
    above = now[now["monetary"] > floor].sort_values(
        ["monetary", "customer_id"], ascending=[False, True]
    )
    summary = text(post.find(".//h:p[@id='outlier-summary']", NS))  # type: ignore[attr-defined]
    assert int(number(summary.split()[0])) == len(above)
    listed = [
        text(r.find("h:td", NS))
        for r in post.findall(".//h:table[@id='outliers']/h:tbody/h:tr", NS)
    ]  # type: ignore[attr-defined]
    assert listed == list(above["customer_id"][:5])


def test_data_quality_equals_the_commit_and_the_quarantine(
    page: object, report: Path, table: pd.DataFrame
) -> None:
    history = DeltaTable(str(report.parent / "customer_segments")).history()
    meta = json.loads(history[0]["userMetadata"])
    recon = json.loads(meta["reconciliation"])
    quality = section(page, "data-quality")
    rows = {
        text(r.find("h:th", NS)): number(text(r.find("h:td", NS)))
        for r in quality.findall(".//h:table[@id='reconciliation']//h:tr", NS)  # type: ignore[attr-defined]
    }
    assert rows["input rows read"] == recon["input_rows"]
    assert rows["quarantined"] == sum(recon["quarantined"].values())
    quarantined = DeltaTable(str(report.parent / "quarantine")).to_pandas()
    in_snapshot = quarantined["snapshot_date"].astype(str) == D.isoformat()
    expected = quarantined[in_snapshot]["reason"].value_counts()
    shown = {
        text(r.findall("h:td", NS)[0]): number(text(r.findall("h:td", NS)[1]))
        for r in quality.findall(".//h:table[@id='quarantine']/h:tbody/h:tr", NS)  # type: ignore[attr-defined]
    }
    assert expected.to_dict() == {"null_customer_id": 3}  # the planted rows, independently
    assert {k: v for k, v in shown.items() if k != "none"} == expected.to_dict()
    clusters = section(page, "clusters").findall(".//h:tbody/h:tr", NS)  # type: ignore[attr-defined]
    now = table[table["snapshot_date"] == D.isoformat()]
    assert len(clusters) == now["cluster_id"].nunique() > 1


@pytest.mark.slow
def test_chromium_draws_the_report_without_console_messages(report: Path, tmp_path: Path) -> None:
    """The page has no script: any console line (an error, a blocked resource) is a fault."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed; run 'make install'"
    shot = tmp_path / "first-screen.png"
    proc = subprocess.run(
        [
            browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,900",
            f"--screenshot={shot}", report.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    picture = Image.open(shot).convert("L")
    assert picture.size == (1280, 900)
    assert len(set(picture.getdata())) > 20  # drawn, not a blank page


def test_a_first_snapshot_of_a_two_axis_scheme(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    """No earlier snapshot and the rf10 scheme (no M axis): the page still has every section,
    says there is nothing to compare with, and its table equals pandas."""
    common = ["--warehouse", str(tmp_path), "--quiet"]
    flags = ["--snapshot-date", D.isoformat(), "--input", str(demo / "transactions")]
    assert main(["segment", *flags, "--scheme", "rf10", *common]) == 0
    out = tmp_path / "r.html"
    assert main(["report", "--snapshot-date", D.isoformat(), "--out", str(out), *common]) == 0
    page = html5lib.HTMLParser(strict=True).parse(out.read_text())
    for name in SECTIONS:
        section(page, name)
    assert "No snapshot 14 or more days before" in text(section(page, "transitions"))
    assert "No earlier snapshot" in text(section(page, "headline"))
    df = DeltaTable(str(tmp_path / "customer_segments")).to_pandas()
    expected = df.groupby("segment").size()
    rows = section(page, "segments").findall(".//h:tbody/h:tr", NS)  # type: ignore[attr-defined]
    shown = {r.get("data-segment"): number(text(r.findall("h:td", NS)[1])) for r in rows}
    assert shown == expected.to_dict()
    cuts = text(section(page, "data-quality").find(".//h:table[@id='cut-points']", NS))  # type: ignore[attr-defined]
    assert "R: recency" in cuts and "F: frequency" in cuts


def test_predictions_per_segment_equal_pandas(
    page: object, table: pd.DataFrame, report: Path
) -> None:
    warehouse = report.parent
    churn = DeltaTable(str(warehouse / "customer_churn")).to_pandas()
    clv = DeltaTable(str(warehouse / "customer_clv")).to_pandas()
    now = table[table["snapshot_date"] == D.isoformat()][["customer_id", "segment"]]
    joined = now.merge(churn, on="customer_id", how="left").merge(
        clv[["customer_id", "p_alive", "clv"]], on="customer_id", how="left"
    )
    want = joined.groupby("segment").agg(
        customers=("customer_id", "size"), mean_churn=("churn_probability", "mean"),
        high=("churn_risk", lambda r: int((r == "high").sum())), p_alive=("p_alive", "mean"),
        clv=("clv", "sum"),
    )  # fmt: skip
    rows = section(page, "predictions").findall(".//h:tbody/h:tr", NS)  # type: ignore[attr-defined]
    assert len(rows) == len(want)
    for tr in rows:
        cells = [text(td) for td in tr.findall("h:td", NS)]
        w = want.loc[cells[0]]
        assert number(cells[1]) == w["customers"]
        assert cells[2] == f"{w['mean_churn']:.1%}" and number(cells[3]) == w["high"]
        assert cells[4] == f"{w['p_alive']:.1%}" and number(cells[5]) == pytest.approx(
            w["clv"], abs=0.006
        )
