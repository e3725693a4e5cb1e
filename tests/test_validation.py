"""Bad rows go to the quarantine with a reason, counts reconcile, and the good rows' segments
do not change; structural problems fail fast with one clear line and the right exit code."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from rfm_spark.cli import main
from rfm_spark.config import Config, InputSettings, ReturnMarker
from rfm_spark.errors import DataError
from rfm_spark.pipeline import SegmentResult, run_segment
from rfm_spark.progress import Progress
from rfm_spark.validation import ALL_REASONS, validate

SNAPSHOT = dt.date(2026, 11, 1)  # a day after it is still in the past: not "future"
HEADER = ["customer_id", "order_id", "order_ts", "amount", "quantity"]
ROOT = Path(__file__).resolve().parents[1]


def _good_rows() -> list[list[str]]:
    """60 customers with 1-6 orders each inside the 365-day window, some returns (negative
    amount and quantity), ids written with and without leading zeros for the same customer."""
    rows = []
    for c in range(1, 61):
        for k in range(1 + c % 6):
            cid = f"{c:03d}" if c % 7 == 0 and k % 2 == 0 else str(c)  # '007' and '7': one
            day = SNAPSHOT - dt.timedelta(days=3 + (c * 37 + k * 53) % 300)
            amount = 5 + (c * 13 + k * 7) % 90
            rows.append([cid, f"O{c}-{k}", f"{day} 10:{k:02d}:00", f"{amount}.50", "1"])
            if (c + k) % 9 == 0:  # a return three days later
                ret = day + dt.timedelta(days=3)
                rows.append([cid, f"O{c}-{k}", f"{ret} 09:00:00", f"-{amount}.50", "-1"])
    # outside the window: before it, and after the snapshot (normal, not quarantined)
    rows.append(["5", "O-old", f"{SNAPSHOT - dt.timedelta(days=400)} 10:00:00", "10.00", "1"])
    rows.append(["6", "O-late", f"{SNAPSHOT + dt.timedelta(days=1)} 10:00:00", "10.00", "1"])
    return rows


# Each kind of bad row, with how many of them the dirty input holds (all counts differ).
BAD: dict[str, list[list[str]]] = {
    "null_customer_id": [
        ["", "B1", "2026-09-01 10:00:00", "10.00", "1"],
        ["   ", "B2", "2026-09-01 10:00:00", "10.00", "1"],
    ],
    "bad_customer_id": [
        ["abc", "B3", "2026-09-01 10:00:00", "10.00", "1"],
        ["12.5", "B4", "2026-09-01 10:00:00", "10.00", "1"],
        ["1e3", "B5", "2026-09-01 10:00:00", "10.00", "1"],
    ],
    "null_timestamp": [["8", "B6", "", "10.00", "1"]] * 1
    + [["9", "B7", "  ", "10.00", "1"], ["10", "B8", "", "11.00", "1"], ["11", "B9", "", "1", "1"]],
    "bad_timestamp": [
        ["12", "B10", "2026-13-45 10:00:00", "10.00", "1"],
        ["12", "B11", "yesterday", "10.00", "1"],
        ["13", "B12", "2026-02-30", "10.00", "1"],
        ["13", "B13", "10/01/2026 10:00", "10.00", "1"],
        ["14", "B14", "2026-10-01T25:00:00", "10.00", "1"],
    ],
    "future_timestamp": [
        ["15", f"B{i}", "2099-01-01 00:00:00", "10.00", "1"] for i in range(15, 21)
    ],
    "null_amount": [
        ["16", f"B{i}", "2026-09-01 10:00:00", a, "1"] for i, a in [(21, ""), (22, " ")]
    ]
    + [["16", f"B{i}", "2026-09-01 10:00:00", "", "1"] for i in range(23, 28)],
    "bad_amount": [
        ["17", "B28", "2026-09-01 10:00:00", "abc", "1"],
        ["17", "B29", "2026-09-01 10:00:00", "NaN", "1"],
        ["17", "B30", "2026-09-01 10:00:00", "Infinity", "1"],
        ["17", "B31", "2026-09-01 10:00:00", "-Infinity", "1"],
        ["17", "B32", "2026-09-01 10:00:00", "1e30", "1"],
        ["17", "B33", "2026-09-01 10:00:00", "12,50", "1"],
        ["17", "B34", "2026-09-01 10:00:00", "10.00.1", "1"],
        ["17", "B35", "2026-09-01 10:00:00", "ten", "1"],
    ],
    "negative_not_return": [
        ["18", f"B{i}", "2026-09-01 10:00:00", "-10.00", q]
        for i, q in zip(range(36, 45), "1" * 9, strict=True)
    ],
}
# copies of good rows: three extra copies of one row, one of another (both in the window)
DUPLICATED = {3: 3, 10: 1}  # index into the good rows -> extra copies
EXPECTED = {**{r: len(rows) for r, rows in BAD.items()}, "duplicate_row": sum(DUPLICATED.values())}


def _write_csv(path: Path, rows: list[list[str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return str(path)


def _config(tmp: Path, input_path: str, **overrides: object) -> Config:
    return Config().with_overrides(
        {
            "warehouse": str(tmp / "warehouse"),
            "input.path": input_path,
            "input.format": "csv",
            "input.customer_id_type": "integer",
            "input.returns": {"column": "quantity"},
            "spark.conf": {},
            **overrides,
        }
    )


def _run(spark: SparkSession, config: Config) -> SegmentResult:
    return run_segment(spark, config, SNAPSHOT, progress=Progress("test", quiet=True))


@pytest.fixture(scope="module")
def runs(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SegmentResult, SegmentResult, Path]:
    """The dirty input and the same data without its bad rows, each segmented once."""
    tmp = tmp_path_factory.mktemp("validation")
    good = _good_rows()
    dirty = [*good]
    for index, copies in DUPLICATED.items():
        dirty += [good[index]] * copies
    dirty += [good[-2]] * 2  # copies of the row before the window: outside it, not quarantined
    for rows in BAD.values():
        dirty += rows
    dirty_cfg = _config(tmp / "dirty", _write_csv(tmp / "dirty.csv", dirty))
    dirty_result = _run(spark, dirty_cfg.with_overrides({"validation.max_quarantine_share": 0.5}))
    clean_result = _run(spark, _config(tmp / "clean", _write_csv(tmp / "clean.csv", good)))
    return dirty_result, clean_result, tmp


def _quarantine(result: SegmentResult) -> pd.DataFrame:
    assert result.quarantine_path is not None
    return DeltaTable(result.quarantine_path).to_pandas()


@pytest.mark.parametrize("reason", ALL_REASONS)
def test_each_bad_kind_is_quarantined_with_its_reason(
    runs: tuple[SegmentResult, SegmentResult, Path], reason: str
) -> None:
    dirty, _, _ = runs
    q = _quarantine(dirty)
    got = q[q["reason"] == reason]
    assert len(got) == EXPECTED[reason], got
    assert dirty.reconciliation.quarantined.get(reason, 0) == EXPECTED[reason]
    assert (got["run_id"] == dirty.run_id).all()
    assert (got["snapshot_date"].astype(str) == str(SNAPSHOT)).all()
    if reason != "duplicate_row":  # the original row comes back as text, exactly as it was
        originals = sorted(tuple(r) for r in BAD[reason])
        texts = sorted(
            tuple(json.loads(t).get(c) or "" for c in HEADER) for t in got["row"].tolist()
        )
        blank = [tuple(v.strip() and v for v in r) for r in originals]
        assert texts in (originals, sorted(blank))


def test_reconciliation_adds_up_and_is_in_the_commit(
    runs: tuple[SegmentResult, SegmentResult, Path],
) -> None:
    dirty, clean, _ = runs
    r = dirty.reconciliation
    assert r.balanced
    assert r.quarantined == EXPECTED
    assert r.used == clean.reconciliation.used
    bad = sum(len(v) for v in BAD.values())
    assert r.input_rows == clean.reconciliation.input_rows + bad + sum(DUPLICATED.values()) + 2
    assert r.before_window == clean.reconciliation.before_window + 2  # its copies are outside
    assert r.after_snapshot == clean.reconciliation.after_snapshot == 1
    meta = DeltaTable(dirty.table_path).history()[0]["userMetadata"]
    committed = json.loads(json.loads(meta)["reconciliation"])
    assert committed["quarantined"] == EXPECTED and committed["input_rows"] == r.input_rows
    # the quarantine table holds exactly the quarantined rows
    assert len(_quarantine(dirty)) == r.quarantined_rows


def test_good_rows_segments_equal_those_without_the_bad_rows(
    runs: tuple[SegmentResult, SegmentResult, Path],
) -> None:
    dirty, clean, _ = runs
    cols = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score",
            "m_score", "segment"]  # fmt: skip
    a = DeltaTable(dirty.table_path).to_pandas()[cols].sort_values("customer_id")
    b = DeltaTable(clean.table_path).to_pandas()[cols].sort_values("customer_id")
    assert len(a) == 60 and "7" in set(a["customer_id"])  # '007' and '7' are one customer
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_clean_rerun_empties_the_quarantine_partition(
    spark: SparkSession, runs: tuple[SegmentResult, SegmentResult, Path]
) -> None:
    _, clean, tmp = runs
    assert clean.quarantine_path is None  # no bad rows, no quarantine table made
    dirty_cfg = _config(tmp / "dirty", str(tmp / "clean.csv"))
    rerun = _run(spark, dirty_cfg)
    assert rerun.reconciliation.quarantined == {}
    assert rerun.quarantine_path is not None and _quarantine(rerun).empty


def test_too_many_bad_rows_fail_after_writing_the_quarantine(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = _good_rows() + BAD["bad_amount"]
    config = _config(tmp_path, _write_csv(tmp_path / "in.csv", rows))
    limit = config.with_overrides({"validation.max_quarantine_share": 0.01})
    with pytest.raises(DataError, match=r"bad_amount 8.*max_quarantine_share \(1\.00%\)"):
        _run(spark, limit)
    q = DeltaTable(str(tmp_path / "warehouse" / "quarantine")).to_pandas()
    assert Counter(q["reason"]) == {"bad_amount": 8}
    assert not (tmp_path / "warehouse" / "customer_segments").exists()
    assert _run(spark, config).reconciliation.quarantined == {"bad_amount": 8}  # 8/~250 < 5%


def test_duplicates_can_be_kept(spark: SparkSession, tmp_path: Path) -> None:
    good = _good_rows()
    config = _config(tmp_path, _write_csv(tmp_path / "in.csv", good + [good[3]] * 3))
    result = _run(spark, config.with_overrides({"validation.duplicates": "keep"}))
    assert result.reconciliation.quarantined == {} and result.reconciliation.balanced


def test_typed_inputs_non_finite_amounts_and_return_values(spark: SparkSession) -> None:
    schema = T.StructType(
        [
            T.StructField("cid", T.LongType()),
            T.StructField("ts", T.TimestampType()),
            T.StructField("amt", T.DoubleType()),
            T.StructField("kind", T.StringType()),
        ]
    )
    ts = dt.datetime(2026, 10, 1, 10, tzinfo=dt.timezone.utc)
    rows = [
        (7, ts, 10.0, "sale"),
        (7, ts, math.nan, "sale"),
        (7, ts, math.inf, "sale"),
        (7, ts, -math.inf, "sale"),
        (7, ts, 1e300, "sale"),
        (7, ts, -5.0, " Refund "),
        (7, ts, -5.0, "sale"),
        (7, ts, -5.0, None),
        (None, ts, 1.0, "sale"),
        (8, None, 1.0, "sale"),
    ]
    settings = InputSettings.model_validate(
        {
            "columns": {"customer_id": "cid", "order_id": None, "order_ts": "ts", "amount": "amt"},
            "customer_id_type": "integer",
            "returns": ReturnMarker(column="kind", values=["return", "refund"]),
        }
    )
    now = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    got = [
        (r["customer_id"], r["reject_reason"])
        for r in validate(spark.createDataFrame(rows, schema), settings, now=now).collect()
    ]
    assert got == [
        ("7", None),
        ("7", "bad_amount"),
        ("7", "bad_amount"),
        ("7", "bad_amount"),
        ("7", "bad_amount"),
        ("7", None),
        ("7", "negative_not_return"),
        ("7", "negative_not_return"),
        (None, "null_customer_id"),
        ("8", "null_timestamp"),
    ]


# ---- structural problems: one line, exit code, no stack trace ----------------------------


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["segment", "--quiet", "--snapshot-date", str(SNAPSHOT), *args])
    err = capsys.readouterr().err.strip()
    return code, err


# What the JVM and Spark print while starting, before our logging settings apply.
JVM_BANNER = ("WARNING: Using incubator modules", "Setting default log level", "To adjust logging")


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(JVM_BANNER)]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "at org.apache" not in err
    return lines[0]


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write_csv(tmp_path_factory.mktemp("structural") / "good.csv", _good_rows())


def _csv_flags(path: str, tmp: Path) -> list[str]:
    return ["--input", path, "--input-format", "csv", "--warehouse", str(tmp / "wh")]


def test_missing_input_path(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(_csv_flags(str(tmp_path / "nope.csv"), tmp_path), capsys)
    assert code == 2 and "does not exist" in _one_line(err) and "--input" in err


def test_empty_input(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(_csv_flags(_write_csv(tmp_path / "empty.csv", []), tmp_path), capsys)
    assert code == 1 and "has no rows" in _one_line(err)


def test_missing_column(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("customer,order_ts,amount\n1,2026-10-01 10:00:00,5\n")
    code, err = _cli(_csv_flags(str(path), tmp_path), capsys)
    line = _one_line(err)
    assert code == 2 and "missing column(s) customer_id" in line and "present: customer," in line


def test_mistyped_column(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typed"
    spark.createDataFrame(
        [("1", "O1", True, 5.0)],
        "customer_id string, order_id string, order_ts boolean, amount double",
    ).write.parquet(str(path))
    code, err = _cli(["--input", str(path), "--warehouse", str(tmp_path / "wh")], capsys)
    line = _one_line(err)
    assert code == 2 and "'order_ts' (order_ts) has type boolean" in line and "Fix:" in line


def test_wrong_config_type_and_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("validation:\n  max_quarantine_share: lots\n")
    code, err = _cli(["--config", str(cfg)], capsys)
    assert code == 2 and "'validation.max_quarantine_share'" in _one_line(err)
    code = main(["segment", "--quiet", "--snapshot-date", "23.11.2026"])
    err = capsys.readouterr().err
    assert code == 2 and "23.11.2026" in _one_line(err) and "YYYY-MM-DD" in err


def test_scheme_that_misses_codes(
    spark: SparkSession, tmp_path: Path, good_csv: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scheme = tmp_path / "s.yaml"
    scheme.write_text(
        "name: partial\naxes: [r, f]\nbins: 5\nsegments:\n  top:\n"
        "    ranges: [{r: [4, 5], f: [1, 5]}]\n"
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"segments:\n  scheme: {scheme}\n")
    code, err = _cli(["--config", str(cfg), *_csv_flags(good_csv, tmp_path)], capsys)
    line = _one_line(err)
    assert code == 2 and "partial" in line and "11" in line


@pytest.mark.slow
def test_unreadable_file_fails_in_one_line_without_java_trace(tmp_path: Path) -> None:
    data = tmp_path / "tx"
    data.mkdir()
    (data / "part-0.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "rfm-spark"),
            "segment",
            "--quiet",
            "--master",
            "local[1]",
            "--snapshot-date",
            str(SNAPSHOT),
            "--input",
            str(data),
            "--warehouse",
            str(tmp_path / "wh"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    line = _one_line(proc.stderr)
    assert "part-0.parquet" in line or "not a Parquet file" in line, line


def test_backfill_quarantines_once_and_each_snapshot_reconciles(
    spark: SparkSession, runs: tuple[SegmentResult, SegmentResult, Path]
) -> None:
    from rfm_spark.pipeline import run_backfill

    _, _, tmp = runs
    dates = [SNAPSHOT - dt.timedelta(days=7), SNAPSHOT]
    quiet = Progress("test", quiet=True)
    dirty = _config(tmp / "bf-dirty", str(tmp / "dirty.csv"))
    dirty = dirty.with_overrides({"validation.max_quarantine_share": 0.5})
    got = run_backfill(spark, dirty, dates, progress=quiet)
    clean = run_backfill(
        spark, _config(tmp / "bf-clean", str(tmp / "clean.csv")), dates, progress=quiet
    )
    assert got.reconciliation is not None and got.reconciliation.balanced
    assert got.reconciliation.quarantined == EXPECTED  # every duplicate lies in the span
    q = DeltaTable(str(got.quarantine_path)).to_pandas()
    assert dict(Counter(q["reason"])) == EXPECTED
    assert set(q["snapshot_date"].astype(str)) == {str(SNAPSHOT)}
    for snap, ref in zip(got.snapshots, clean.snapshots, strict=True):
        assert snap.reconciliation.balanced and snap.reconciliation.used == ref.reconciliation.used
    cols = ["snapshot_date", "customer_id", "r_score", "f_score", "m_score", "segment"]
    a = DeltaTable(got.table_path).to_pandas()[cols].sort_values(cols[:2]).reset_index(drop=True)
    b = DeltaTable(clean.table_path).to_pandas()[cols].sort_values(cols[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("duplicates", ["quarantine", "keep"])
def test_features_are_computed_with_one_shuffle(
    spark: SparkSession, tmp_path: Path, duplicates: str
) -> None:
    """From the raw rows to the per-customer features there is one exchange, by customer: the
    whole-row grouping, the daily aggregates and the features reuse its partitioning."""
    from rfm_spark.features import daily_aggregates, rfm_features
    from rfm_spark.pipeline import _valid_rows

    path = _write_csv(tmp_path / "in.csv", _good_rows())
    config = _config(tmp_path, path, **{"validation.duplicates": duplicates})
    start = SNAPSHOT - dt.timedelta(days=365)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    _, rows, _, _ = _valid_rows(spark, config, start=start, end=SNAPSHOT, now=now)
    features = rfm_features(daily_aggregates(rows), snapshot_date=SNAPSHOT, lookback_days=365)
    assert features.count() == 60
    plan = features._jdf.queryExecution().executedPlan().toString()
    exchanges = [line.strip() for line in plan.splitlines() if "Exchange" in line]
    assert len(exchanges) == 1, plan
    assert "hashpartitioning(customer_id" in exchanges[0], plan
    if duplicates == "quarantine":  # the whole-row grouping streams over sorted partitions
        assert "SortAggregate(key=[customer_id" in plan, plan
        # and so do the order, day and customer levels after it, when told the rows are sorted
        ordered = rfm_features(
            daily_aggregates(rows, ordered=True),
            snapshot_date=SNAPSHOT,
            lookback_days=365,
            ordered=True,
        )
        assert ordered.count() == 60
        streamed = ordered._jdf.queryExecution().executedPlan().toString()
        assert "HashAggregate" not in streamed, streamed
        assert streamed.count("SortAggregate(key=[customer_id") == 4, streamed
        assert streamed.count("Sort [") == 1, streamed  # one sort, after the one exchange
        assert streamed.count("Exchange") == 1, streamed
        assert sorted(ordered.collect()) == sorted(features.collect())


def test_rows_differing_only_in_where_a_null_is_are_not_copies(spark: SparkSession) -> None:
    """Spark's row hashes skip null fields, so ``(null, "1")`` and ``("1", null)`` would hash
    alike; the fingerprint also sees which fields are null. True copies are still found."""
    from rfm_spark.validation import deduplicate

    ts = dt.datetime(2026, 10, 1, 10, 0)
    rows = [
        ("7", "O1", ts, "10.00", None, "1", ["x"]),
        ("7", "O1", ts, "10.00", "1", None, ["x"]),
        ("7", "O1", ts, "10.00", "1", None, ["x"]),  # a copy of the row above
        ("7", "O1", ts, "10.00", None, None, ["x"]),
        ("7", "O1", ts, "10.00", None, None, [None, "x"]),  # nulls inside arrays count too
        ("7", "O1", ts, "10.00", None, None, ["x", None]),
    ]
    raw = spark.createDataFrame(
        rows,
        "customer_id string, order_id string, order_ts timestamp, amount string, a string, "
        "b string, tags array<string>",
    )
    validated = validate(raw, InputSettings(path="-"), now=dt.datetime.now(dt.timezone.utc))
    distinct, obs = deduplicate(validated.drop("reject_reason"))
    copies = sorted(r["_copies"] for r in distinct.collect())
    assert copies == [1, 1, 1, 1, 2]
    assert obs.get["duplicates"] == 1
