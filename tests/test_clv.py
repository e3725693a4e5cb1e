"""Customer lifetime value: the models' gradients and predictions against finite differences and
a simulation of the models' own stories, then `clv fit` on the CDNOW sample against the
published summaries and parameter estimates, and `clv score` of a new customer set from the
saved fit, read back with deltalake.

CDNOW (tests/data/cdnow/, from the lifetimes package's datasets): 2,357 customers who first
bought in the first quarter of 1997, every purchase until June 1998; calibration is the 39
weeks to 1997-09-30. Published estimates: BG/NBD r 0.243, alpha 4.414, a 0.793, b 2.426
(Fader, Hardie and Lee 2005, "Counting your customers the easy way"); Gamma-Gamma p 6.25,
q 3.74, gamma 15.44 (Fader, Hardie and Lee 2005, "RFM and CLV").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from scipy.optimize import approx_fprime

from rfm_spark.cli import main
from rfm_spark.clv.models import (
    BgNbd,
    GammaGamma,
    bgnbd_loglik,
    expected_purchases,
    expected_spend,
    gamma_gamma_loglik,
    p_alive,
)

CDNOW = Path(__file__).parent / "data" / "cdnow"
BGNBD_PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GG_PAPER = {"p": 6.25, "q": 3.74, "v": 15.44}
CALIBRATION_END = "1997-10-01"  # the snapshot: the calibration period ends the day before


def test_gradients_equal_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, 300).astype(float)
    T = rng.uniform(5, 40, 300)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 300), 0.0)
    n = rng.integers(1, 4, 300).astype(float)
    params = np.array([0.7, 3.0, 0.9, 2.1])
    _, grad = bgnbd_loglik(params, x, t_x, T, n)
    numeric = approx_fprime(params, lambda p: bgnbd_loglik(p, x, t_x, T, n)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4)
    repeat = x > 0
    m = rng.gamma(4.0, 10.0, repeat.sum())
    gg = np.array([5.0, 3.0, 12.0])
    _, grad = gamma_gamma_loglik(gg, x[repeat], m, n[repeat])
    numeric = approx_fprime(gg, lambda p: gamma_gamma_loglik(p, x[repeat], m, n[repeat])[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4)


def simulate_bgnbd(
    m: BgNbd, T: np.ndarray, horizon: float, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """The BG/NBD story, customer by customer (vectorised): a first purchase at 0, Poisson
    purchases at a Gamma(r, alpha) rate, a Beta(a, b) chance of dropping out after each repeat
    purchase. Returns the calibration (x, t_x), the purchases in the next ``horizon`` and
    whether the customer was still active at ``T``."""
    n = len(T)
    rate = rng.gamma(m.r, 1.0 / m.alpha, n)
    drop = rng.beta(m.a, m.b, n)
    now, x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alive, going = np.ones(n, bool), np.ones(n, bool)
    while going.any():
        now = now + rng.exponential(1.0, n) / rate
        inside = going & (now <= T)
        after = going & (now > T) & (now <= T + horizon)
        x[inside] += 1
        t_x[inside] = now[inside]
        later[after] += 1
        dies = (inside | after) & (rng.random(n) < drop)
        alive &= ~(dies & inside)
        going = (inside | after) & ~dies
    return x, t_x, later, alive


def test_predictions_equal_a_simulation_of_the_model() -> None:
    """With the true parameters, the predicted purchases summed over customers equal the
    simulated ones, and the mean probability alive the share still active."""
    rng = np.random.default_rng(1)
    m = BgNbd(**BGNBD_PAPER)
    T = rng.uniform(27, 39, 40_000)
    x, t_x, later, alive = simulate_bgnbd(m, T, 39.0, rng)
    predicted = expected_purchases(m, 39.0, x, t_x, T).sum()
    assert predicted == pytest.approx(later.sum(), rel=0.03)
    assert p_alive(m, x, t_x, T).mean() == pytest.approx(alive.mean(), abs=0.01)
    assert (p_alive(m, x[x == 0], t_x[x == 0], T[x == 0]) == 1).all()

    g = GammaGamma(**GG_PAPER)  # spend: Gamma(p, nu) per purchase, nu ~ Gamma(q, gamma)
    nu = rng.gamma(g.q, 1.0 / g.v, 40_000)
    k = rng.integers(1, 10, 40_000)
    mean_spend = rng.gamma(g.p * k, 1.0 / nu) / k  # the mean of k purchases
    assert expected_spend(g, k, mean_spend).mean() == pytest.approx((g.p / nu).mean(), rel=0.02)
    heavy = GammaGamma(p=5.0, q=0.9, v=1.0)  # q <= 1: no population mean for one-time buyers
    spend = expected_spend(heavy, np.array([0.0, 2.0]), np.array([np.nan, 10.0]))
    assert np.isnan(spend[0]) and spend[1] == pytest.approx(5.0 * (1.0 + 20.0) / (10.0 - 0.1))


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CDNOW sample as a transactions CSV (noon of each day)."""
    raw = pd.read_csv(
        CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None,
        names=["master_id", "customer_id", "day", "cds", "amount"], dtype=str,
    )  # fmt: skip
    raw["order_ts"] = pd.to_datetime(raw["day"]) + pd.Timedelta(hours=12)
    root = tmp_path_factory.mktemp("cdnow")
    raw[["customer_id", "order_ts", "amount"]].to_csv(root / "all.csv", index=False)
    raw[raw["customer_id"] < "1000"][["customer_id", "order_ts", "amount"]].to_csv(
        root / "new.csv", index=False
    )
    (root / "config.yaml").write_text(
        "input:\n  format: csv\n  columns: {order_id: null}\n"
        "validation: {duplicates: keep}  # two equal rows on one day are two purchases here\n"
    )
    return root


def test_fit_on_cdnow_equals_the_published_estimates(
    cdnow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config", str(cdnow / "config.yaml"), "--warehouse", str(cdnow / "wh")]
    fit = ["clv", "fit", "--input", str(cdnow / "all.csv"), "--snapshot-date", CALIBRATION_END]
    assert main([*fit, "--time-unit", "week", "--output", str(cdnow / "fit.json"), *common]) == 0
    record = json.loads((cdnow / "fit.json").read_text())
    for name, value in BGNBD_PAPER.items():
        assert record["bgnbd"][name] == pytest.approx(value, rel=0.02), name
    for name, value in GG_PAPER.items():
        assert record["gamma_gamma"][name] == pytest.approx(value, rel=0.01), name
    # 8 customers whose only purchase cost $0.00 are not customers here (a purchase has a
    # positive amount), so the likelihood sums over 2,349 of the paper's 2,357: -9578 vs -9582
    assert record["customers"] == 2349 and record["repeat_customers"] == 946
    assert record["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=10)
    (saved,) = DeltaTable(str(cdnow / "wh" / "model_versions")).to_pandas()["metadata"]
    assert json.loads(saved)["bgnbd"] == record["bgnbd"]
    assert "saved CLV fit version 1 in" in capsys.readouterr().out


def test_summaries_equal_the_published_ones(spark: object, cdnow: Path) -> None:
    from rfm_spark.config import load_config
    from rfm_spark.pipeline.clv import summaries_for

    config = load_config(str(cdnow / "config.yaml")).with_overrides(
        {"input.path": str(cdnow / "all.csv")}
    )
    got = summaries_for(spark, config, pd.Timestamp(CALIBRATION_END).date(), "week").toPandas()  # type: ignore[arg-type]
    got.index = got["customer_id"].astype(int)
    ref = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv", index_col="ID")
    free = sorted(set(ref.index) - set(got.index))  # the $0.00-only customers
    assert len(free) == 8 and (ref.loc[free, "x"] == 0).all()
    ref = ref.loc[got.index]
    assert (got["frequency"] == ref["x"]).all()
    np.testing.assert_allclose(got["recency"], ref["t_x"], atol=0.005)
    np.testing.assert_allclose(got["T"], ref["T"], atol=0.005)
    spend = got["monetary_value"].fillna(0.0)
    np.testing.assert_allclose(spend, ref["zbar"], atol=0.005)


def test_score_a_new_customer_set_from_the_saved_fit(
    cdnow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config", str(cdnow / "config.yaml"), "--warehouse", str(cdnow / "wh2")]
    score = ["clv", "score", "--input", str(cdnow / "new.csv"), "--snapshot-date", "1998-07-01"]
    assert main([*score, "--fit", str(cdnow / "fit.json"), *common]) == 0
    assert "version 0" in capsys.readouterr().out
    table = DeltaTable(str(cdnow / "wh2" / "customer_clv")).to_pandas()
    new = pd.read_csv(cdnow / "new.csv", dtype={"customer_id": str})
    assert set(table["customer_id"]) == set(new.loc[new["amount"] > 0, "customer_id"])
    fit = json.loads((cdnow / "fit.json").read_text())["bgnbd"]
    r, alpha, a, b = (fit[k] for k in ("r", "alpha", "a", "b"))
    x, t_x, T = table["frequency"], table["recency"], table["T"]
    by_hand = np.where(
        x > 0,
        1 / (1 + a / (b + x - 1).clip(lower=1e-9) * ((alpha + T) / (alpha + t_x)) ** (r + x)),
        1,
    )
    np.testing.assert_allclose(table["p_alive"], by_hand, rtol=1e-9)
    assert (table["clv"] == table["expected_purchases"] * table["expected_spend"]).all()
    assert (table["horizon_days"] == 90).all() and table["clv"].gt(0).all()
    assert main(["clv", "score", "--snapshot-date", "1998-07-01", *common]) == 2  # no fit there
    assert "run 'rfm-spark clv fit' first" in capsys.readouterr().err
