"""`campaigns evaluate` on hand-made audiences and transactions: the per-arm outcomes equal
pandas', and the statistics equal statsmodels' and scipy's on pandas' numbers."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from rfm_spark.campaigns import load_campaigns
from rfm_spark.cli import main
from rfm_spark.config import Config
from rfm_spark.io.store import open_store
from rfm_spark.pipeline.evaluate import evaluate_campaign
from rfm_spark.schemas import AUDIENCES_SCHEMA

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 20)
WINDOW = 14
CAMPAIGNS = """\
campaigns:
  - name: winback
    audience: {moved_to: at_risk}
    channel: email
    control_share: 0.4
"""


@pytest.fixture(scope="module")
def setup(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(3)
    audience, tx = [], []
    for i in range(240):  # day D1: 240 customers in two segments; D2: 20 more (window not over)
        customer, arm = f"c{i:03d}", ("control" if i % 5 < 2 else "treatment")
        segment = "at_risk" if i % 2 else "hibernating"
        audience.append((D1, "winback", customer, arm, segment, "r", "email", "run"))
        buy = rng.random() < (0.45 if arm == "treatment" else 0.30)
        for _ in range(int(buy) * int(rng.integers(1, 3))):
            day = D1 + dt.timedelta(days=int(rng.integers(0, WINDOW)))
            tx.append((customer, f"o{len(tx)}", day, round(float(rng.lognormal(3, 0.8)), 2)))
        if rng.random() < 0.2:  # outside the window: does not count
            tx.append((customer, f"o{len(tx)}", D1 + dt.timedelta(days=WINDOW + 1), 50.0))
    audience += [
        (D2, "winback", f"d{i}", "treatment", "at_risk", "r", "email", "run") for i in range(20)
    ]
    tx.append(("c001", "ret", D1 + dt.timedelta(days=3), -10.0))  # a return subtracts
    tx.append(("z", "last", dt.date(2026, 3, 25), 1.0))  # the transactions end on 2026-03-25
    config = Config().with_overrides(
        {"warehouse": str(root / "wh"), "input.path": str(root / "tx.csv"), "input.format": "csv"}
    )
    with (root / "tx.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["customer_id", "order_id", "order_ts", "amount"])
        out.writerows((c, o, f"{d} 10:00:00", a) for c, o, d, a in tx)
    rows = spark.createDataFrame(audience, AUDIENCES_SCHEMA)
    store = open_store(spark)
    for day in (D1, D2):
        store.write_partition(
            rows.filter(rows["date"] == day), config.table_path("campaign_audiences"),
            partition_column="date", partition_value=day,
        )  # fmt: skip
    (root / "campaigns.yaml").write_text(CAMPAIGNS)
    frame = pd.DataFrame(tx, columns=["customer_id", "order_id", "day", "amount"])
    people = pd.DataFrame(audience, columns=[f.name for f in AUDIENCES_SCHEMA.fields])
    return {"root": root, "config": config, "tx": frame, "audience": people[people["date"] == D1]}


def expected_outcomes(setup: dict[str, object]) -> pd.DataFrame:
    tx, people = setup["tx"], setup["audience"]
    assert isinstance(tx, pd.DataFrame) and isinstance(people, pd.DataFrame)
    inside = tx[(tx["day"] >= D1) & (tx["day"] < D1 + dt.timedelta(days=WINDOW))]
    per = inside.groupby("customer_id").agg(
        converted=("amount", lambda a: int((a > 0).any())), revenue=("amount", "sum")
    )
    out = (
        people.set_index("customer_id")
        .join(per, how="left")
        .fillna({"converted": 0, "revenue": 0.0})
    )
    return out.reset_index()


def test_effects_equal_statsmodels_and_scipy(spark: SparkSession, setup: dict[str, object]) -> None:
    config = setup["config"]
    assert isinstance(config, Config)
    campaign = load_campaigns(Path(str(setup["root"])) / "campaigns.yaml").campaigns[0]
    ev = evaluate_campaign(spark, config, campaign, WINDOW)
    assert ev.days == [D1] and ev.incomplete == [D2]  # D2's window runs past 2026-03-25
    ref = expected_outcomes(setup)
    for row in ev.rows:
        part = ref if row.segment == "(all)" else ref[ref["segment"] == row.segment]
        t, c = part[part["arm"] == "treatment"], part[part["arm"] == "control"]
        assert (row.treatment, row.control) == (len(t), len(c))
        _, p = proportions_ztest([t["converted"].sum(), c["converted"].sum()], [len(t), len(c)])
        assert row.conversion is not None and row.conversion.p_value == pytest.approx(p, rel=1e-9)
        assert row.conversion.treatment == pytest.approx(t["converted"].mean())
        welch = stats.ttest_ind(t["revenue"], c["revenue"], equal_var=False)
        assert row.revenue is not None and row.revenue.p_value == pytest.approx(
            welch.pvalue, rel=1e-6
        )
        assert row.revenue.difference == pytest.approx(t["revenue"].mean() - c["revenue"].mean())
    assert [r.segment for r in ev.rows] == ["(all)", "at_risk", "hibernating"]
    expected_srm = stats.chisquare([96 + 48, 96], f_exp=[240 * 0.6, 240 * 0.4]).pvalue
    assert ev.srm_p_value == pytest.approx(expected_srm) and not ev.mismatch


def test_cli_prints_the_table(setup: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(str(setup["root"]))
    flags = ["--campaigns", str(root / "campaigns.yaml"), "--campaign", "winback", "--quiet"]
    flags += ["--warehouse", str(root / "wh"), "--window-days", str(WINDOW)]
    assert main(["campaigns", "evaluate", *flags, "--config", str(write_config(root))]) == 0
    out = capsys.readouterr().out
    assert (
        "campaign winback: 1 contact day(s)" in out
        and "left out (window not over yet): 2026-03-20" in out
    )
    assert "sample ratio: p = " in out and "(OK)" in out
    assert main(["campaigns", "evaluate", *flags[:2], "--campaign", "nope"]) == 2


def write_config(root: Path) -> Path:
    path = root / "config.yaml"
    path.write_text(f"input:\n  path: {root / 'tx.csv'}\n  format: csv\n")
    return path
