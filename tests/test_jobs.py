"""The spark-submit entry point: master from spark-submit, package from --py-files, the Delta
connector from --jars (as a cluster without Maven access passes pre-fetched jars)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _procs import fast_jvm_env
from deltalake import DeltaTable

from rfm_spark import jars

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_spark_submit_segment_job(demo: Path, tmp_path: Path) -> None:
    submit = Path(sys.executable).with_name("spark-submit")
    assert submit.exists(), "pyspark installs spark-submit beside python"
    # ship the package as spark-submit --py-files would on a cluster
    bundle = tmp_path / "rfm_spark.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for f in (ROOT / "rfm_spark").rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                zf.write(f, f.relative_to(ROOT))
    job = tmp_path / "segment.py"
    shutil.copy(ROOT / "jobs" / "segment.py", job)
    env = {
        **fast_jvm_env(),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    delta_jars = jars.installed_jars(jars.delta_artifact())
    assert delta_jars, "make install fetches the connector's jars"
    cmd = [
        str(submit),
        "--master",
        "local[1]",
        "--jars",
        ",".join(delta_jars),
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=2",
        "--py-files",
        str(bundle),
        str(job),
        "--snapshot-date",
        "2026-11-01",
        "--input",
        str(demo / "transactions"),
        "--customers-input",  # conf/local.yaml's attribute rules read it
        str(demo / "customers"),
        "--warehouse",
        str(tmp_path / "wh"),
        "--config",
        str(ROOT / "conf" / "local.yaml"),  # its local[*] must not override spark-submit
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "version 0" in out.stdout  # the extension was added by the job
    assert "master local[1]" in out.stdout + out.stderr  # PythonRunner merges the streams
    df = DeltaTable(str(tmp_path / "wh" / "customer_segments")).to_pandas()
    assert len(df) > 0 and df["customer_id"].is_unique
    assert all("market" in dict(m) for m in df["attribute_segments"])
