"""Churn: the features and labels against pandas over the generated transactions, features
blind to everything on or after the snapshot, then `churn train` (held-out AUC at least 0.75
and equal to scikit-learn's on the saved model's predictions, the importance table) and
`churn score` read back with deltalake."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
from sklearn.metrics import roc_auc_score

from rfm_spark.churn.features import FEATURES, LABEL, churn_features, churn_labels
from rfm_spark.churn.models import part
from rfm_spark.cli import main
from rfm_spark.config import Config, InputSettings
from rfm_spark.pipeline.churn import SEED, daily_before

END = dt.date(2026, 11, 23)  # the demo data's end
HORIZON = 90
TRAINED_ON = END - dt.timedelta(days=HORIZON)
LOOKBACK = 365


def pandas_churn(tx: pd.DataFrame, d: dt.date) -> pd.DataFrame:
    """The features of rfm_spark.churn.features written again over the raw rows, with labels."""
    tx = tx.assign(
        day=pd.to_datetime(tx["order_ts"], utc=True).dt.date, amount=tx["amount"].astype(float)
    )
    buys = tx[tx["amount"] > 0]
    daily = tx.groupby(["customer_id", "day"]).agg(net=("amount", "sum")).join(
        buys.groupby(["customer_id", "day"])["order_id"].nunique().rename("orders")
    ).fillna({"orders": 0}).reset_index()  # fmt: skip

    def within(before: int, until: int = 0) -> pd.Series:
        return (daily["day"] >= d - dt.timedelta(days=before)) & (
            daily["day"] < d - dt.timedelta(days=until)
        )

    w = daily[within(LOOKBACK)]
    out = pd.DataFrame(index=sorted(set(w.loc[w["orders"] > 0, "customer_id"])))
    g = w.groupby("customer_id")
    bought = w[w["orders"] > 0].groupby("customer_id")["day"]
    out["recency_days"] = [(d - x).days for x in bought.max().loc[out.index]]
    out["tenure_days"] = [(d - x).days for x in bought.min().loc[out.index]]
    out["frequency"], out["monetary"] = g["orders"].sum(), g["net"].sum()
    out["purchase_days"] = w[w["orders"] > 0].groupby("customer_id").size()
    for name, (before, until) in {"30d": (30, 0), "90d": (90, 0), "prev_90d": (180, 90)}.items():
        part_ = daily[within(before, until)].groupby("customer_id")
        out[f"orders_{name}"] = part_["orders"].sum().reindex(out.index).fillna(0)
        out[f"spend_{name}"] = part_["net"].sum().reindex(out.index).fillna(0)
    for kind in ("orders", "spend"):
        recent, before = out[f"{kind}_90d"], out[f"{kind}_prev_90d"]
        total = recent + before
        trend = np.where(total > 0, (recent - before) / total.where(total > 0, 1), 0.0)
        out[f"{kind[:-1] if kind == 'orders' else kind}_trend"] = trend
    after = daily[(daily["day"] >= d) & (daily["day"] < d + dt.timedelta(days=HORIZON))]
    active = set(after.loc[after["orders"] > 0, "customer_id"])
    out[LABEL] = [0.0 if c in active else 1.0 for c in out.index]
    return out.astype(float)


@pytest.fixture(scope="module")
def config(demo: Path) -> Config:
    return Config(input=InputSettings(path=str(demo / "transactions")))


def test_features_and_labels_equal_pandas_and_ignore_the_future(
    spark: SparkSession, demo: Path, config: Config
) -> None:
    start = TRAINED_ON - dt.timedelta(days=LOOKBACK)
    daily = daily_before(spark, config, start, END)
    got = churn_features(daily, TRAINED_ON, LOOKBACK).toPandas().set_index("customer_id")
    labels = churn_labels(daily, TRAINED_ON, HORIZON).toPandas().set_index("customer_id")
    want = pandas_churn(pd.read_parquet(demo / "transactions"), TRAINED_ON)
    got = got.sort_index()
    assert list(got.index) == list(want.index)
    pd.testing.assert_frame_equal(
        got[FEATURES], want[FEATURES], check_exact=False, rtol=1e-9, check_names=False
    )
    churned = ~want.index.isin(labels.index)
    assert (churned == (want[LABEL] == 1.0)).all() and 0.1 < churned.mean() < 0.9
    # blind to the future: the rows on and after the snapshot change nothing
    blind = daily_before(spark, config, start, TRAINED_ON)
    again = churn_features(blind, TRAINED_ON, LOOKBACK).toPandas().set_index("customer_id")
    pd.testing.assert_frame_equal(again.sort_index(), got)


def test_train_then_score(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--input", str(demo / "transactions"), "--warehouse", str(tmp_path), "--quiet"]
    assert main(["churn", "train", "--snapshot-date", str(END), *common]) == 0
    printed = capsys.readouterr().out
    (meta_text,) = DeltaTable(str(tmp_path / "model_versions")).to_pandas()["metadata"]
    meta = json.loads(meta_text)
    assert meta["trained_on"] == str(TRAINED_ON) and meta["chosen"] in meta["validation_auc"]
    assert meta["test_auc"] >= 0.75, meta
    assert f"test AUC of {meta['chosen']}: {meta['test_auc']:.3f}" in printed
    for feature in FEATURES:  # the importance table
        assert any(line.split()[:1] == [feature] for line in printed.splitlines()), feature
    assert sum(meta["importances"].values()) == pytest.approx(1.0)

    # the reported test AUC is scikit-learn's on the saved model's test predictions
    model = PipelineModel.load(str(tmp_path / "models" / "churn" / "v1"))
    data = pandas_churn(pd.read_parquet(demo / "transactions"), TRAINED_ON).reset_index(
        names="customer_id"
    )
    test = part(spark.createDataFrame(data), "test", SEED)
    rows = model.transform(test).select(LABEL, "probability").collect()
    auc = roc_auc_score([r[LABEL] for r in rows], [float(r["probability"][1]) for r in rows])
    assert auc == pytest.approx(meta["test_auc"], abs=1e-9)

    assert main(["churn", "score", "--snapshot-date", str(END), *common]) == 0
    assert "churn risk as of" in capsys.readouterr().out
    table = DeltaTable(str(tmp_path / "customer_churn")).to_pandas()
    now = pandas_churn(pd.read_parquet(demo / "transactions"), END)
    assert sorted(table["customer_id"]) == list(now.index)
    bands = pd.cut(table["churn_probability"], [-0.1, 0.3, 0.6, 1.1], right=False,
                   labels=["low", "medium", "high"])  # fmt: skip
    assert (bands.astype(str) == table["churn_risk"]).all()
    assert (table["model_version"] == 1).all()
