"""Every command through Spark Connect, from a client process that has no Java, equals local mode.

A real Spark Connect server (``python -m rfm_spark.servers connect``, what ``make
connect-server`` runs) listens on a free port of 127.0.0.1. Each command runs as its own client
process with ``SPARK_REMOTE`` set and a ``java`` on its PATH that only leaves a mark when
started: the client must never start one. The same commands run in local mode in this test
process; their tables (read back with ``deltalake``) and files must be equal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from _procs import kill_group
from deltalake import DeltaTable

from rfm_spark.cli import main

pytestmark = pytest.mark.slow

END = dt.date(2026, 11, 23)
EARLIER = END - dt.timedelta(days=14)
CAMPAIGNS = """\
campaigns:
  - name: rescue
    audience: {moved_to: at_risk, within_days: 14}
    channel: email
    control_share: 0.2
  - name: vip
    audience: {segment: champions}
    channel: push
    control_share: 0.5
"""
# both sides split work the same way, so that seeded models fit the same partitions
CONFIG = """\
spark:
  master: local[2]
  conf:
    spark.sql.shuffle.partitions: 2
    spark.default.parallelism: 4
    spark.sql.adaptive.enabled: false
    spark.ui.enabled: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"no server on {port} after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server with the connector, as ``make connect-server`` starts it."""
    root = tmp_path_factory.mktemp("connect-server")
    (root / "config.yaml").write_text(CONFIG)
    port = free_port()
    log = root / "server.log"
    # the server's own JVM flags: ALS's deep task graphs overflow the stack of C1-only code
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS")}
    env.pop("JAVA_TOOL_OPTIONS", None)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rfm_spark.servers",
                "connect",
                "--port",
                str(port),
                "--config",
                str(root / "config.yaml"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, log, timeout=300)
        yield f"sc://127.0.0.1:{port}"
    finally:
        kill_group(proc)
        proc.wait()


@dataclass(frozen=True)
class Side:
    warehouse: Path
    out: Path


def commands(demo: Path, side: Side, campaigns: Path) -> list[list[str]]:
    """Every command, in the order a user runs them, writing to ``side``."""
    tx = ["--input", str(demo / "transactions")]
    wh = ["--warehouse", str(side.warehouse), "--quiet"]
    out = side.out
    runs = [
        ["segment", "--snapshot-date", str(EARLIER), *tx],
        ["segment", "--snapshot-date", str(END), *tx],
        [
            "backfill",
            "--start",
            str(END - dt.timedelta(days=7)),
            "--end",
            str(END),
            "--step-days",
            "7",
            *tx,
        ],
        ["transitions", "--as-of", str(END), "--output", str(out / "moves.csv")],
        ["export", "--snapshot-date", str(END), "--output", str(out / "segments.parquet")],
        ["train", "--snapshot-date", str(END), "--k", "4"],
        [
            "campaigns",
            "run",
            "--campaigns",
            str(campaigns),
            "--date",
            str(END),
            "--out",
            str(out / "lists"),
            "--customers-input",
            str(demo / "customers"),
        ],
        ["churn", "train", "--snapshot-date", str(END), *tx],
        ["churn", "score", "--snapshot-date", str(END), *tx],
        ["clv", "fit", "--snapshot-date", str(END), *tx, "--output", str(out / "fit.json")],
        ["clv", "score", "--snapshot-date", str(END), *tx],
        ["recommend", "--snapshot-date", str(END), *tx, "--products-input", str(demo / "products")],
        ["report", "--snapshot-date", str(END), "--out", str(out / "report.html")],
    ]
    return [[*r, *wh] for r in runs]


@pytest.fixture(scope="module")
def sides(
    server: str, demo: Path, spark: object, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Side, Side, Path]:
    """The commands in local mode (this process) and through the server (client processes);
    the folder of the client's would-be ``java``."""
    root = tmp_path_factory.mktemp("connect")
    (root / "campaigns.yaml").write_text(CAMPAIGNS)
    (root / "config.yaml").write_text(CONFIG)
    config = ["--config", str(root / "config.yaml")]
    local, remote = (
        Side(root / "local-wh", root / "local"),
        Side(root / "remote-wh", root / "remote"),
    )
    for cmd in commands(demo, local, root / "campaigns.yaml"):
        assert main([*cmd, *config]) == 0, cmd
    nojava = root / "nojava"
    nojava.mkdir()
    marker = root / "java-was-started"
    (nojava / "java").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (nojava / "java").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "JAVA"))}
    env.update(
        SPARK_REMOTE=server,
        JAVA_HOME=str(nojava.parent / "no-jdk"),
        PATH=f"{nojava}{os.pathsep}{env['PATH']}",
    )
    for cmd in commands(demo, remote, root / "campaigns.yaml"):
        done = subprocess.run(
            [sys.executable, "-m", "rfm_spark.cli", *cmd, *config],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=900,
        )
        assert done.returncode == 0, f"{cmd[:2]}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return local, remote, marker


def table(side: Side, name: str, *, drop: tuple[str, ...] = ("run_id",)) -> pd.DataFrame:
    """A table as ``deltalake`` reads it (an independent reader), in a stable order."""
    df = DeltaTable(str(side.warehouse / name)).to_pandas()
    df = df.drop(columns=[c for c in drop if c in df.columns])
    df = df.map(lambda v: json.dumps(sorted(v), default=str) if isinstance(v, list) else v)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_the_client_never_started_java(sides: tuple[Side, Side, Path]) -> None:
    assert not sides[2].exists()


@pytest.mark.parametrize(
    "name",
    ["customer_segments", "campaign_audiences", "customer_churn", "customer_recommendations"],
)
def test_tables_equal_local_mode(sides: tuple[Side, Side, Path], name: str) -> None:
    local, remote, _ = sides
    pd.testing.assert_frame_equal(table(remote, name), table(local, name), check_exact=False)


def test_models_and_fits_equal_local_mode(sides: tuple[Side, Side, Path]) -> None:
    local, remote, _ = sides
    drop = ("created_at", "metadata", "path")
    pd.testing.assert_frame_equal(
        table(remote, "model_versions", drop=drop), table(local, "model_versions", drop=drop)
    )
    fits = [json.loads((s.out / "fit.json").read_text()) for s in (local, remote)]
    for model in ("bgnbd", "gamma_gamma"):
        for key, value in fits[0][model].items():
            assert fits[1][model][key] == pytest.approx(value, rel=1e-6), (model, key)
    clv = [table(s, "customer_clv") for s in (local, remote)]
    pd.testing.assert_frame_equal(clv[1], clv[0], check_exact=False, rtol=1e-6)
    profiles = [table(s, "cluster_profiles") for s in (local, remote)]
    pd.testing.assert_frame_equal(profiles[1], profiles[0], check_exact=False)


def test_files_equal_local_mode(sides: tuple[Side, Side, Path]) -> None:
    local, remote, _ = sides
    assert (remote.out / "moves.csv").read_text() == (local.out / "moves.csv").read_text()
    pd.testing.assert_frame_equal(
        pd.read_parquet(remote.out / "segments.parquet").drop(columns="run_id"),
        pd.read_parquet(local.out / "segments.parquet").drop(columns="run_id"),
    )
    lists = sorted(p.name for p in (local.out / "lists").iterdir())
    assert lists == sorted(p.name for p in (remote.out / "lists").iterdir()) and lists
    for name in lists:
        assert (remote.out / "lists" / name).read_text() == (local.out / "lists" / name).read_text()


def test_the_report_says_the_same(sides: tuple[Side, Side, Path]) -> None:
    """The pages differ only in their images' bytes, their warehouse, the time they were made
    and the runs' ids."""

    def words(side: Side) -> str:
        page = (side.out / "report.html").read_text().replace(str(side.warehouse), "<warehouse>")
        page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
        page = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{8}", "<run>", page)
        return re.sub(r"\d{4}-\d\d-\d\dT?\s?\d\d:\d\d(:\d\d)?\S*", "<time>", page)

    assert words(sides[1]) == words(sides[0])


def test_incremental_runs_are_refused_through_connect(
    sides: tuple[Side, Side, Path], demo: Path, server: str
) -> None:
    """Their streaming query hands batches to this process; the run says so, writes nothing."""
    remote = sides[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    env["SPARK_REMOTE"] = server
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rfm_spark.cli",
            "segment",
            "--incremental",
            "--snapshot-date",
            str(END),
            "--input",
            str(demo / "transactions"),
            "--warehouse",
            str(remote.warehouse / "incremental"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "incremental runs need a classic session" in done.stderr
    assert not (remote.warehouse / "incremental" / "customer_day_activity").exists()
