from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rfm_spark.config import Config, load_config, parse_date
from rfm_spark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["local.yaml", "cluster.example.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(ROOT / "conf" / name)
    assert config.scoring.bins == 5
    assert config.segments.scheme == "rfm11"


def test_cluster_example_sets_no_master() -> None:
    assert load_config(ROOT / "conf" / "cluster.example.yaml").spark.master is None


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'scoring\.binz'"):
        load_config(write(tmp_path, "scoring:\n  binz: 4\n"))


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'features\.lookback_days'.*found 'a year'"):
        load_config(write(tmp_path, "features:\n  lookback_days: a year\n"))


def test_impossible_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'scoring\.bins'"):
        load_config(write(tmp_path, "scoring:\n  bins: 1\n"))


def test_bad_date_in_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'demo\.end_date'"):
        load_config(write(tmp_path, "demo:\n  end_date: 2026-13-45\n"))


def test_bad_time_zone(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_config(write(tmp_path, "features:\n  time_zone: Mars/Olympus\n"))


def test_thresholds_must_fit_bins(tmp_path: Path) -> None:
    text = """
scoring:
  method: thresholds
  bins: 5
  thresholds: {recency: [30, 90, 180], frequency: [2, 3, 5, 10], monetary: [50, 100, 200, 500]}
"""
    with pytest.raises(ConfigError, match=r"recency has 3 cut points but bins is 5"):
        load_config(write(tmp_path, text))


def test_thresholds_required_for_method() -> None:
    with pytest.raises(ConfigError, match=r"scoring\.thresholds is not set"):
        Config().with_overrides({"scoring.method": "thresholds"})


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_overrides_apply_and_validate() -> None:
    config = Config().with_overrides({"scoring.bins": 4, "input.path": "/x", "warehouse": None})
    assert (config.scoring.bins, config.input.path, config.warehouse) == (4, "/x", "./warehouse")
    with pytest.raises(ConfigError, match="command-line flags"):
        Config().with_overrides({"scoring.method": "bogus"})


def test_config_is_frozen_and_fingerprint_tracks_changes() -> None:
    config = Config()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        config.warehouse = "x"  # type: ignore[misc]
    assert config.fingerprint() == Config().fingerprint()
    assert config.fingerprint() != config.with_overrides({"scoring.bins": 4}).fingerprint()


def test_parse_date() -> None:
    assert parse_date("2026-11-23") == dt.date(2026, 11, 23)
    with pytest.raises(
        ConfigError, match="--snapshot-date '23/11/2026' is not a date; use YYYY-MM-DD"
    ):
        parse_date("23/11/2026", "--snapshot-date")


def test_secret_settings_stay_out_of_the_fingerprint() -> None:
    """A rotated secret keeps the hash recorded with each run; other settings change it."""
    base = Config().with_overrides({"spark.conf": {"spark.sql.shuffle.partitions": "8"}})
    secrets = {
        "spark.hadoop.fs.s3a.secret.key": "s3cr3t",
        "spark.hadoop.fs.s3a.session.token": "t0ken",
        "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net": "k3y",
        "spark.hadoop.javax.jdo.option.ConnectionPassword": "pw",
    }
    with_secrets = base.with_overrides({"spark.conf": {**base.spark.conf, **secrets}})
    rotated = base.with_overrides(
        {"spark.conf": {**base.spark.conf, **{k: v + "2" for k, v in secrets.items()}}}
    )
    assert base.fingerprint() == with_secrets.fingerprint() == rotated.fingerprint()
    other = base.with_overrides({"spark.conf": {"spark.sql.shuffle.partitions": "9"}})
    assert other.fingerprint() != base.fingerprint()
