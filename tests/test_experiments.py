"""A/B arms and statistics: assignment is deterministic, independent across salts and on plan;
every statistic equals statsmodels' or scipy's on the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from rfm_spark.experiments import (
    CONTROL,
    arm,
    conversion_effect,
    revenue_effect,
    sample_ratio_p_value,
    sample_size,
)

N = 100_000


@pytest.fixture(scope="module")
def arms(spark: SparkSession) -> dict[str, np.ndarray]:
    """Arms of 100k customers under two salts, twice under the first (a rerun)."""
    customers = spark.range(N).select(F.format_string("C%08d", "id").alias("customer_id"))
    rows = customers.select(
        (arm("winback", 0.2) == CONTROL).alias("a"),
        (arm("winback", 0.2) == CONTROL).alias("rerun"),
        (arm("vip_preview", 0.3) == CONTROL).alias("b"),
    ).toPandas()
    return {c: rows[c].to_numpy() for c in rows.columns}


def test_arms_are_deterministic_on_plan_and_independent_across_salts(
    arms: dict[str, np.ndarray],
) -> None:
    assert (arms["a"] == arms["rerun"]).all()
    assert abs(arms["a"].mean() - 0.2) < 0.01 and abs(arms["b"].mean() - 0.3) < 0.01
    table = np.array(
        [[np.sum(arms["a"] & arms["b"]), np.sum(arms["a"] & ~arms["b"])],
         [np.sum(~arms["a"] & arms["b"]), np.sum(~arms["a"] & ~arms["b"])]]
    )  # fmt: skip
    assert stats.chi2_contingency(table).pvalue > 0.001  # no dependence between the salts
    assert abs(table[0, 0] / N - 0.2 * 0.3) < 0.005


def test_a_customer_keeps_their_arm_whoever_else_is_in_the_audience(spark: SparkSession) -> None:
    ids = [f"C{i:08d}" for i in range(50)]
    alone = spark.createDataFrame([(i,) for i in ids[:5]], "customer_id string")
    crowd = spark.createDataFrame([(i,) for i in ids], "customer_id string")
    got = {r[0]: r[1] for r in alone.select("customer_id", arm("s", 0.5)).collect()}
    again = {r[0]: r[1] for r in crowd.select("customer_id", arm("s", 0.5)).collect()}
    assert all(again[k] == v for k, v in got.items())
    with pytest.raises(ValueError, match="control_share"):
        arm("s", 1.5)


@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), [(230, 2000, 180, 2000), (31, 800, 40, 200)])
def test_conversion_effect_equals_statsmodels(x_t: int, n_t: int, x_c: int, n_c: int) -> None:
    got = conversion_effect(x_t, n_t, x_c, n_c)
    _, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert got.p_value == pytest.approx(p, rel=1e-9)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert got.difference == pytest.approx(x_t / n_t - x_c / n_c)


def test_revenue_effect_from_summaries_equals_welch_on_the_raw_values() -> None:
    rng = np.random.default_rng(7)
    treated = rng.lognormal(3.1, 1.2, 900) * (rng.random(900) < 0.3)
    control = rng.lognormal(3.0, 1.1, 300) * (rng.random(300) < 0.25)
    got = revenue_effect(
        treated.mean(), treated.std(ddof=1), len(treated),
        control.mean(), control.std(ddof=1), len(control),
    )  # fmt: skip
    ref = stats.ttest_ind(treated, control, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize(("p_c", "p_t", "share"), [(0.10, 0.12, 0.2), (0.30, 0.25, 0.5)])
def test_sample_size_equals_statsmodels(p_c: float, p_t: float, share: float) -> None:
    n_t, n_c = sample_size(p_c, p_t, control_share=share)  # type: ignore[misc]
    ratio = share / (1 - share)
    ref = NormalIndPower().solve_power(
        effect_size=abs(proportion_effectsize(p_t, p_c)), alpha=0.05, power=0.8, ratio=ratio
    )
    assert n_t == int(np.ceil(ref)) and n_c == int(np.ceil(ref * ratio))
    assert sample_size(0.1, 0.1, control_share=share) is None


def test_sample_ratio_mismatch() -> None:
    n_t, n_c = 8100, 1900  # planned 80/20: a visible mismatch
    expected = np.array([8000, 2000])
    statistic = ((np.array([n_t, n_c]) - expected) ** 2 / expected).sum()
    assert sample_ratio_p_value(n_t, n_c, 0.2) == pytest.approx(stats.chi2.sf(statistic, 1))
    assert sample_ratio_p_value(n_t, n_c, 0.2) < 0.05
    assert sample_ratio_p_value(8003, 1997, 0.2) > 0.5
