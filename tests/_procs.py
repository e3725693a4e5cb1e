"""Real `rfm-spark segment` processes for the concurrency and crash tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# short JVM runs: the client compiler only and a serial GC take about a third less time
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def segment_command(demo: Path, warehouse: Path, day: str) -> list[str]:
    """The CLI segmenting the demo transactions as of ``day`` on one core."""
    return [
        sys.executable,
        "-m",
        "rfm_spark.cli",
        "segment",
        "--snapshot-date",
        day,
        "--input",
        str(demo / "transactions"),
        "--warehouse",
        str(warehouse),
        "--master",
        "local[1]",
        "--spark-conf",
        "spark.sql.shuffle.partitions=2",
        "--spark-conf",
        "spark.ui.enabled=false",
    ]


def fast_jvm_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the short-run JVM options added."""
    env = dict(os.environ if env is None else env)
    env["JAVA_TOOL_OPTIONS"] = f"{env.get('JAVA_TOOL_OPTIONS', '')} {FAST_JVM}".strip()
    return env
