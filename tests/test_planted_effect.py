"""End to end on generated data with a planted campaign effect: `campaigns evaluate` finds it,
and splits of the same audience that had no effect planted (other salts) come out significant
at about the stated 5% rate.

The generator gives the treatment arm of salt ``winback`` an extra order with chance 0.3 in the
14 days from the contact day, so a treated customer converts with ``c + 0.3 (1 - c)`` for a
control conversion ``c``. Other salts split the same customers independently of that arm, so for
them the planted orders fall on both arms alike: no effect.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import stats

from rfm_spark.campaigns import load_campaigns
from rfm_spark.campaigns.outcomes import arm_summaries, outcomes
from rfm_spark.cli import main
from rfm_spark.config import Config, InputSettings
from rfm_spark.datagen.effect import PlantedEffect
from rfm_spark.experiments import CONTROL, TREATMENT, arm, conversion_effect
from rfm_spark.io.demo_data import generate
from rfm_spark.pipeline.evaluate import evaluate_campaign
from rfm_spark.pipeline.rows import valid_rows

END = dt.date(2026, 11, 23)
CONTACT = END - dt.timedelta(days=28)
WINDOW = 14
LIFT = 0.3
ALPHA = 0.05
NULL_SALTS = 40
CAMPAIGNS = """\
campaigns:
  - name: winback
    audience: {segment: potential_loyalist}
    channel: email
    control_share: 0.5
    opt_in: false
"""


@pytest.fixture(scope="module")
def planted(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("planted")
    effect = PlantedEffect("winback", 0.5, CONTACT, WINDOW, LIFT)
    generate(spark, str(root / "data"), customers=3000, days=400, end_date=END, seed=13,
             effect=effect)  # fmt: skip
    tx = ["--input", str(root / "data" / "transactions")]
    common = ["--warehouse", str(root / "wh"), "--quiet"]
    assert main(["segment", "--snapshot-date", str(CONTACT), *tx, *common]) == 0
    (root / "campaigns.yaml").write_text(CAMPAIGNS)
    run = ["campaigns", "run", "--campaigns", str(root / "campaigns.yaml"), "--date", str(CONTACT)]
    assert main([*run, "--out", str(root / "lists"), *common]) == 0
    config = Config(
        warehouse=str(root / "wh"), input=InputSettings(path=str(root / "data" / "transactions"))
    )
    return {"root": root, "config": config, "tx": tx, "common": common}


def test_evaluate_finds_the_planted_effect(
    spark: SparkSession, planted: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, config = Path(str(planted["root"])), planted["config"]
    assert isinstance(config, Config)
    campaign = load_campaigns(root / "campaigns.yaml").campaigns[0]
    ev = evaluate_campaign(spark, config, campaign, WINDOW)
    overall = ev.rows[0]
    assert overall.segment == "(all)" and overall.treatment > 150 and overall.control > 150
    conv = overall.conversion
    assert conv is not None and conv.p_value < 1e-3
    expected = LIFT * (1 - conv.control)  # the uplift the planted orders give
    assert conv.ci_low < expected < conv.ci_high and conv.ci_low > 0
    assert overall.revenue is not None and overall.revenue.difference > 0
    assert not ev.mismatch

    evaluate = ["campaigns", "evaluate", "--campaigns", str(root / "campaigns.yaml")]
    evaluate += ["--campaign", "winback", *planted["tx"], *planted["common"]]  # type: ignore[misc]
    capsys.readouterr()
    assert main(evaluate) == 0
    printed = capsys.readouterr().out
    assert f"{conv.difference * 100:+.2f} pp" in printed


def per_customer_outcomes(spark: SparkSession, planted: dict[str, object]) -> DataFrame:
    """Each audience customer's conversion in the window, as the evaluation computes it."""
    config = planted["config"]
    assert isinstance(config, Config)
    audience = spark.read.format("delta").load(config.table_path("campaign_audiences"))
    now = dt.datetime.now(dt.timezone.utc)
    end = CONTACT + dt.timedelta(days=WINDOW)
    _, rows, _, _ = valid_rows(spark, config, start=CONTACT, end=end, now=now)
    return outcomes(audience, rows, WINDOW).cache()


def test_no_planted_effect_no_finding_at_the_stated_rate(
    spark: SparkSession, planted: dict[str, object]
) -> None:
    done = per_customer_outcomes(spark, planted)
    salts = ["winback", *[f"placebo-{i}" for i in range(NULL_SALTS)]]
    split = None
    for salt in salts:  # the segment column carries the salt: one summary row per salt and arm
        part = done.select(
            F.lit(salt).alias("segment"), arm(salt, 0.5).alias("arm"), "converted", "revenue"
        )
        split = part if split is None else split.unionByName(part)
    assert split is not None
    sums = {(r["segment"], r["arm"]): r for r in arm_summaries(split).collect()}
    p_values = {}
    for salt in salts:
        t, c = sums[(salt, TREATMENT)], sums[(salt, CONTROL)]
        effect = conversion_effect(
            t["conversions"], t["customers"], c["conversions"], c["customers"]
        )
        p_values[salt] = effect.p_value
    assert p_values["winback"] < 1e-3  # the planted split, recomputed: found
    nulls = [p_values[s] for s in salts[1:]]
    false_alarms = sum(p < ALPHA for p in nulls)
    # at most what a 5% rate gives with probability 0.999 (binomial), and the p-values of the
    # null splits spread over [0, 1] (Kolmogorov-Smirnov against the uniform)
    assert false_alarms <= stats.binom.ppf(0.999, NULL_SALTS, ALPHA)
    assert stats.kstest(nulls, "uniform").pvalue > 0.001
    assert not math.isnan(sum(nulls))
    done.unpersist()
