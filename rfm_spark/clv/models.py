"""BG/NBD and Gamma-Gamma: log-likelihoods with their gradients, and the predictions.

Plain numpy over arrays of customer summaries (``x`` repeat purchase days, ``t_x`` the last
purchase's time since the first, ``T`` the customer's age, ``m`` mean spend of the repeat
purchases, ``n`` how many customers share those values), so that Spark can sum them over the
partitions of a summary table (:mod:`rfm_spark.pipeline.clv`) and the optimiser on the driver
sees one number and one gradient per step.

BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): while alive a
customer buys at a Poisson rate drawn from Gamma(r, alpha); after each purchase they drop out
with a probability drawn from Beta(a, b). Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and
CLV"; Hardie's note on the model): spend per purchase is Gamma(p, nu) around a customer mean
whose rate nu is Gamma(q, gamma) across customers; it is fitted on repeat customers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln, hyp2f1

FloatArray = np.ndarray


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float  # the scale gamma of the customers' mean rates


def bgnbd_loglik(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray, n: FloatArray
) -> tuple[float, FloatArray]:
    """Summed log-likelihood of (r, alpha, a, b) and its gradient in those four."""
    r, alpha, a, b = params
    has = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    bx1 = np.where(has, b + x - 1, 1.0)  # unused where x = 0
    a4 = np.where(has, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    top = np.maximum(a3, a4)
    mix = top + np.log(np.exp(a3 - top) + np.exp(a4 - top))
    w3 = np.exp(a3 - mix)  # the weights of the two terms in the mixture
    w4 = 1.0 - w3
    d_r = digamma(r + x) - digamma(r) + np.log(alpha)
    d_r += w3 * -np.log(alpha + T) + w4 * np.where(has, -np.log(alpha + t_x), 0.0)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T)
    d_alpha -= w4 * np.where(has, (r + x) / (alpha + t_x), 0.0)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 * np.where(has, 1.0 / a, 0.0)
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
    d_b -= w4 * np.where(has, 1.0 / bx1, 0.0)
    total = float(np.sum(n * (a1 + a2 + mix)))
    grad = np.array([np.sum(n * d) for d in (d_r, d_alpha, d_a, d_b)])
    return total, grad


def gamma_gamma_loglik(
    params: FloatArray, x: FloatArray, m: FloatArray, n: FloatArray
) -> tuple[float, FloatArray]:
    """Summed log-likelihood of (p, q, v) over repeat customers (``x >= 1``) and its gradient."""
    p, q, v = params
    px = p * x
    spend = v + x * m
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(spend)
    )  # fmt: skip
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(spend))
    d_q = digamma(px + q) - digamma(q) + np.log(v) - np.log(spend)
    d_v = q / v - (px + q) / spend
    return float(np.sum(n * ll)), np.array([np.sum(n * d) for d in (d_p, d_q, d_v)])


def p_alive(m: BgNbd, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Probability that the customer is still active at ``T`` (1 for no repeat purchase)."""
    has = x > 0
    ratio = np.where(
        has,
        m.a / np.where(has, m.b + x - 1, 1.0) * ((m.alpha + T) / (m.alpha + t_x)) ** (m.r + x),
        0.0,
    )
    return 1.0 / (1.0 + ratio)


def expected_purchases(
    m: BgNbd, horizon: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Expected purchases in the next ``horizon`` time units, given the customer's history."""
    z = horizon / (m.alpha + T + horizon)
    hyp = hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1, z)
    head = (m.a + m.b + x - 1) / (m.a - 1)
    body = 1.0 - ((m.alpha + T) / (m.alpha + T + horizon)) ** (m.r + x) * hyp
    return head * body * p_alive(m, x, t_x, T)


def expected_spend(g: GammaGamma, x: FloatArray, m: FloatArray) -> FloatArray:
    """Expected spend per purchase: the customer's mean shrunk toward the population's (the
    population's, ``p v / (q - 1)``, for customers without repeat purchases). NaN where it
    does not exist: with ``q <= 1`` the population's mean is infinite."""
    x = np.asarray(x, dtype=float)
    mean = np.where(x > 0, np.nan_to_num(m), 0.0)
    denominator = g.p * x + g.q - 1
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, g.p * (g.v + x * mean) / safe, np.nan)
