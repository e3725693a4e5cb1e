"""`rfm-spark campaigns run` on generated data: the audiences equal what pandas finds in the two
snapshots and the customers table (segment, move, channel opt-in), every arm equals an independent xxhash64 of (salt, customer id), a rerun of the day
gives the same rows, and the contact lists hold exactly the treatment arms."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import xxhash
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from rfm_spark.cli import main

D = dt.date(2026, 11, 23)
EARLIER = D - dt.timedelta(days=14)
CAMPAIGNS = """\
campaigns:
  - name: rescue
    audience: {moved_to: at_risk, within_days: 14}
    channel: email
    control_share: 0.2
    frequency_cap_days: 7
  - name: vip
    audience: {segment: champions}
    channel: push
    control_share: 0.5
    salt: vip-2026
  - name: notice
    audience: {segment: hibernating}
    channel: sms
    opt_in: false
"""


def spark_arm(salt: str, control_share: float, customer_id: str) -> str:
    """Spark's xxhash64(salt, id) (seed 42, each column hashed with the previous hash as its
    seed), onto [0, 1) as rfm_spark.experiments does: written here from the definition."""
    seed = xxhash.xxh64_intdigest(salt.encode(), seed=42)
    hashed = xxhash.xxh64_intdigest(customer_id.encode(), seed=seed)
    signed = hashed - 2**64 if hashed >= 2**63 else hashed
    return "control" if (signed % 2**53) / 2**53 < control_share else "treatment"


@pytest.fixture(scope="module")
def ran(spark: SparkSession, demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("campaigns")
    common = ["--warehouse", str(root / "wh"), "--quiet"]
    for day in (EARLIER, D):
        tx = ["--input", str(demo / "transactions")]
        assert main(["segment", "--snapshot-date", day.isoformat(), *tx, *common]) == 0
    (root / "campaigns.yaml").write_text(CAMPAIGNS)
    run = ["campaigns", "run", "--campaigns", str(root / "campaigns.yaml"), "--date", str(D)]
    run += ["--customers-input", str(demo / "customers")]
    for _ in range(2):  # the day twice: the rerun replaces it with the same rows
        assert main([*run, "--out", str(root / "lists"), *common]) == 0
    return root


def test_audiences_arms_and_lists(
    ran: Path, demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = DeltaTable(str(ran / "wh" / "campaign_audiences"))
    rows = table.to_pandas()
    assert table.version() == 1 and set(rows["date"].astype(str)) == {D.isoformat()}
    assert rows["customer_id"].is_unique  # one campaign a customer

    seg = DeltaTable(str(ran / "wh" / "customer_segments")).to_pandas()
    seg["snapshot_date"] = seg["snapshot_date"].astype(str)
    now = seg[seg["snapshot_date"] == D.isoformat()].set_index("customer_id")["segment"]
    then = seg[seg["snapshot_date"] == EARLIER.isoformat()].set_index("customer_id")["segment"]
    both = now.to_frame("now").join(then.rename("then"), how="inner")
    movers = set(both[(both["now"] == "at_risk") & (both["then"] != "at_risk")].index)
    champions = set(now[now == "champions"].index)
    customers = pd.read_parquet(demo / "customers").set_index("customer_id")
    email = set(customers.index[customers["email_opt_in"]])
    push = set(customers.index[customers["push_opt_in"]])
    assert movers - email and champions - push  # the opt-ins leave someone out
    got = rows.groupby("campaign")["customer_id"].apply(set).to_dict()
    assert got == {  # disjoint: no priority conflict here
        "rescue": movers & email,
        "vip": champions & push,
        "notice": set(now[now == "hibernating"].index),  # opt_in: false reaches everyone
    }

    salts = {"rescue": ("rescue", 0.2), "vip": ("vip-2026", 0.5), "notice": ("notice", 0.1)}
    expected = [
        spark_arm(*salts[c], i) for c, i in zip(rows["campaign"], rows["customer_id"], strict=True)
    ]
    assert rows["arm"].tolist() == expected
    assert set(rows["channel"]) == {"email", "push", "sms"}

    for name in ("rescue", "vip", "notice"):
        listed = pd.read_csv(ran / "lists" / f"{name}-{D}.csv", dtype=str)
        treated = rows[(rows["campaign"] == name) & (rows["arm"] == "treatment")]
        assert listed["customer_id"].tolist() == sorted(treated["customer_id"])
        assert list(listed.columns) == ["customer_id", "segment", "reason", "channel"]


def test_a_bad_campaign_file_fails_before_spark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(CAMPAIGNS.replace("channel: email", "channel: fax"))
    code = main(
        ["campaigns", "run", "--campaigns", str(bad), "--date", str(D), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "'campaigns.0.channel'" in capsys.readouterr().err


def test_opt_ins_need_a_customers_table(
    ran: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--warehouse", str(ran / "wh"), "--quiet", "--out", str(tmp_path)]
    run = ["campaigns", "run", "--campaigns", str(ran / "campaigns.yaml"), "--date", str(D)]
    assert main([*run, *common]) == 2
    err = capsys.readouterr().err
    assert "needs customer columns ['email_opt_in', 'push_opt_in']" in err
    assert "--customers-input" in err


def test_a_frequency_cap_reaches_back_over_earlier_days(ran: Path, tmp_path: Path) -> None:
    """Champions reached (either arm) on the earlier snapshot are not reached again 14 days
    later under a 20-day cap; with a 14-day cap they are (contacts may be 14 days apart)."""
    seg = DeltaTable(str(ran / "wh" / "customer_segments")).to_pandas()
    seg["snapshot_date"] = seg["snapshot_date"].astype(str)
    champions = {
        day: set(seg[(seg["snapshot_date"] == str(day)) & (seg["segment"] == "champions")]
                 ["customer_id"])
        for day in (EARLIER, D)
    }  # fmt: skip
    for cap, expected in ((20, champions[D] - champions[EARLIER]), (14, champions[D])):
        wh = tmp_path / f"cap{cap}"
        shutil.copytree(ran / "wh" / "customer_segments", wh / "customer_segments")
        (tmp_path / "c.yaml").write_text(
            "campaigns:\n  - name: vip\n    audience: {segment: champions}\n    channel: push\n"
            f"    opt_in: false\n    frequency_cap_days: {cap}\n"
        )
        for day in (EARLIER, D):
            run = ["campaigns", "run", "--campaigns", str(tmp_path / "c.yaml"), "--date", str(day)]
            assert main([*run, "--out", str(tmp_path / "lists"), "--warehouse", str(wh),
                         "--quiet"]) == 0  # fmt: skip
        rows = DeltaTable(str(wh / "campaign_audiences")).to_pandas()
        later = set(rows[rows["date"].astype(str) == str(D)]["customer_id"])
        assert later == expected and champions[D] & champions[EARLIER]
