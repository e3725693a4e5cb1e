"""The connector's jars: coordinates that match the installed packages, the fetched folder, and
the session settings built from it (no JVM needed here; the suite's own session is the proof
that the jars load)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pyspark
import pytest

from rfm_spark import jars
from rfm_spark.errors import EnvironmentProblem
from rfm_spark.spark_conf import DELTA_CATALOG, DELTA_EXTENSION, check_spark_version, delta_conf


@pytest.mark.parametrize(
    ("name", "artifact"),
    [
        ("delta-spark_4.2_2.13-4.4.0.jar", "delta-spark_4.2_2.13"),
        ("jackson-core-2.13.5.jar", "jackson-core"),
        ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
        ("wildfly-openssl-2.2.5.Final.jar", "wildfly-openssl"),
        ("scala-library-2.13.17.jar", "scala-library"),
    ],
)
def test_artifact_names(name: str, artifact: str) -> None:
    assert jars.artifact_name(name) == artifact


def test_coordinates_follow_the_installed_packages() -> None:
    delta = jars.delta_artifact()
    spark_line = ".".join(pyspark.__version__.split(".")[:2])
    assert delta.coordinate == (
        f"io.delta:delta-spark_{spark_line}_2.13:{importlib.metadata.version('delta-spark')}"
    )
    s3 = jars.s3_artifact()
    assert s3 is not None and s3.group == "org.apache.hadoop" and s3.artifact == "hadoop-aws"
    shipped = (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")
    assert [p.name for p in shipped] == [f"hadoop-client-api-{s3.version}.jar"]


def test_make_install_fetched_the_connector_without_pyspark_duplicates() -> None:
    found = jars.installed_jars(jars.delta_artifact())
    names = {jars.artifact_name(Path(p).name) for p in found}
    assert jars.delta_artifact().artifact in names and "delta-storage" in names
    shipped = {
        jars.artifact_name(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    }
    assert not names & shipped  # Spark's own copies are the ones it loads


def test_session_settings_with_and_without_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"spark.sql.shuffle.partitions": "4"}
    conf = delta_conf(base, local=True)
    listed = conf["spark.driver.extraClassPath"].split(os.pathsep)
    assert listed == jars.installed_jars(jars.delta_artifact())
    assert conf["spark.sql.extensions"] == DELTA_EXTENSION
    assert conf["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    with_s3 = delta_conf(base, local=True, s3=True)["spark.driver.extraClassPath"]
    assert any("hadoop-aws" in j for j in with_s3.split(os.pathsep))
    assert set(listed) < set(with_s3.split(os.pathsep))

    # spark-submit brings the jars (--packages): only the extension and catalog are added
    submitted = delta_conf(base, local=False)
    assert "spark.driver.extraClassPath" not in submitted and "spark.jars" not in submitted
    assert submitted["spark.sql.extensions"] == DELTA_EXTENSION

    # the user's own packages win: no jars of ours are added
    own = {"spark.jars.packages": "io.delta:delta-spark_4.2_2.13:4.4.0"}
    assert "spark.driver.extraClassPath" not in delta_conf(own, local=True)

    # an offline machine: no jars to add; the session then stops at require_delta
    monkeypatch.setenv(jars.JARS_ENV, str(tmp_path / "empty"))
    assert "spark.driver.extraClassPath" not in delta_conf(base, local=True)


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("4.0.1", True),
        ("4.1.0", True),
        ("4.2.0", True),
        ("4.2.3", True),
        ("4.0.0", False),
        ("3.5.4", False),
        ("4.3.0", False),
        ("5.0.0", False),
    ],
)
def test_a_spark_outside_the_supported_range_is_refused(version: str, supported: bool) -> None:
    if supported:
        check_spark_version(version)
    else:
        with pytest.raises(EnvironmentProblem, match=rf"Spark {version} found; .* 4\.0\.1 to 4\.2"):
            check_spark_version(version)
