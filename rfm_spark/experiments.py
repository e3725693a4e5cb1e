"""A/B tests: arms from a salted hash of the customer id, and the statistics of the outcome.

An arm is a pure function of (salt, customer id): ``xxhash64(salt, customer_id)`` mapped onto
[0, 1), control below the control share. So reruns give the same arms, a customer keeps their
arm whoever else is in the audience, and campaigns with different salts are independent of
each other. It is a Column expression: assigning arms runs no Spark action.

The statistics take per-arm summaries (customers, conversions, means and standard deviations of
revenue per customer), which Spark computes with one aggregation; nothing per customer reaches
the driver. Conversion: the two-proportion z-test (pooled standard error for the test, unpooled
for the interval). Revenue: Welch's t-test and its Welch-Satterthwaite interval. Sample size:
the customers per arm a two-sided test at ``alpha`` needs to detect the observed conversion
effect with ``power`` (Cohen's h, the normal power equation). Sample-ratio mismatch: the
chi-square goodness-of-fit p-value of the arm counts against the planned split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F
from scipy import optimize, stats

CONTROL = "control"
TREATMENT = "treatment"
SRM_ALPHA = 0.001  # a sample-ratio mismatch is flagged below this p-value (the usual threshold)
_RESOLUTION = 2**53  # hash values kept: uniform on [0, 1) at double precision


def unit_interval(salt: str, customer_id: Column) -> Column:
    """A uniform draw on [0, 1) fixed by ``salt`` and the customer id."""
    hashed = F.xxhash64(F.lit(salt), customer_id.cast("string"))
    return F.pmod(hashed, F.lit(_RESOLUTION)).cast("double") / F.lit(float(_RESOLUTION))


def arm(salt: str, control_share: float, customer_id: Column | None = None) -> Column:
    """``"control"`` for a ``control_share`` of the customers, ``"treatment"`` for the rest.

    Args:
        salt: Makes the split of one campaign independent of another's (default in the campaign
            file: the campaign's name).
        control_share: The planned share held out as control, in [0, 1].
        customer_id: The id column (default ``customer_id``).
    """
    if not 0 <= control_share <= 1:
        raise ValueError(f"control_share must be in [0, 1], got {control_share}")
    draw = unit_interval(salt, customer_id if customer_id is not None else F.col("customer_id"))
    return F.when(draw < F.lit(control_share), F.lit(CONTROL)).otherwise(F.lit(TREATMENT))


@dataclass(frozen=True)
class Effect:
    """Treatment against control: both values, their difference (treatment - control) with its
    two-sided confidence interval, and the p-value of no difference."""

    control: float
    treatment: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def relative(self) -> float | None:
        """The difference as a share of the control value (None when that is 0)."""
        return self.difference / self.control if self.control else None


def conversion_effect(
    converted_t: int, n_t: int, converted_c: int, n_c: int, *, confidence: float = 0.95
) -> Effect:
    """The two-proportion z-test of conversion rates (treatment ``t`` against control ``c``)."""
    p_t, p_c = converted_t / n_t, converted_c / n_c
    pooled = (converted_t + converted_c) / (n_t + n_c)
    se_test = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = (p_t - p_c) / se_test if se_test else 0.0
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    q = stats.norm.ppf(0.5 + confidence / 2)
    diff = p_t - p_c
    return Effect(p_c, p_t, diff, diff - q * se, diff + q * se, float(2 * stats.norm.sf(abs(z))))


def revenue_effect(
    mean_t: float,
    sd_t: float,
    n_t: int,
    mean_c: float,
    sd_c: float,
    n_c: int,
    *,
    confidence: float = 0.95,
) -> Effect:
    """Welch's t-test of revenue per customer from each arm's mean, standard deviation (ddof 1)
    and size."""
    result = stats.ttest_ind_from_stats(mean_t, sd_t, n_t, mean_c, sd_c, n_c, equal_var=False)
    v_t, v_c = sd_t**2 / n_t, sd_c**2 / n_c
    se = math.sqrt(v_t + v_c)
    df = (v_t + v_c) ** 2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1)) if se else 1.0
    q = stats.t.ppf(0.5 + confidence / 2, df)
    diff = mean_t - mean_c
    return Effect(mean_c, mean_t, diff, diff - q * se, diff + q * se, float(result.pvalue))


def sample_size(
    p_c: float, p_t: float, *, control_share: float, alpha: float = 0.05, power: float = 0.8
) -> tuple[int, int] | None:
    """Customers needed in (treatment, control) to detect conversion ``p_c`` -> ``p_t`` with a
    two-sided test at ``alpha`` and ``power``, split as planned; None without an effect."""
    h = abs(2 * math.asin(math.sqrt(p_t)) - 2 * math.asin(math.sqrt(p_c)))
    if h == 0 or not 0 < control_share < 1:
        return None
    ratio = control_share / (1 - control_share)  # control customers per treatment customer
    crit = stats.norm.ppf(1 - alpha / 2)

    def shortfall(n_t: float) -> float:
        shift = h * math.sqrt(n_t / (1 + 1 / ratio))
        return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift)) - power

    upper = 2.0
    while shortfall(upper) < 0:
        upper *= 2
    n_t = optimize.brentq(shortfall, 1e-9, upper, xtol=1e-10)
    return math.ceil(n_t), math.ceil(n_t * ratio)


def sample_ratio_p_value(n_t: int, n_c: int, control_share: float) -> float:
    """The chi-square goodness-of-fit p-value of the arm sizes against the planned split (below
    :data:`SRM_ALPHA`: the arms are off the plan; check the assignment before reading results)."""
    total = n_t + n_c
    expected = [total * (1 - control_share), total * control_share]
    return float(stats.chisquare([n_t, n_c], f_exp=expected).pvalue)
