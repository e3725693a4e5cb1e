"""The JVM jars the product adds to Spark: the Delta Lake connector, and hadoop-aws for ``s3a://``.

``python -m rfm_spark.jars fetch`` (run by ``make install``) resolves the connector and its
runtime dependencies once into a local folder; :func:`rfm_spark.session.build_spark` then lists
those files in ``spark.jars``. Jars that pyspark already ships (Scala, Jackson, Hadoop client,
Parquet, log4j) are left out: Spark's own copies would win on the driver's classpath anyway, and
two versions of one library in a folder only invite confusion.

Two resolvers, tried in this order:

- Maven (``mvn``), with a generated one-dependency pom and ``dependency:copy-dependencies``:
  it uses and fills ``~/.m2`` and honours the machine's ``settings.xml`` (mirrors, proxies).
- Spark's own resolver, Apache Ivy (the ``ivy-*.jar`` inside pyspark), run standalone: needs
  nothing but Java, so it works where Maven is not installed.

On a cluster none of this is used: ``spark-submit --packages`` (or a Databricks runtime)
brings the jars; see docs/cluster.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

JARS_ENV = "RFM_SPARK_JARS_DIR"
SCALA = "2.13"
MVN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_COMPLETE = ".complete"  # written last: a folder without it is a fetch that did not finish
_JAR_NAME = re.compile(
    r"^(?P<artifact>.+?)-(?P<version>\d[^-]*(?:-\d[^-]*)?)(?:-[a-z][^.]*)?\.jar$"
)


@dataclass(frozen=True)
class Artifact:
    """A Maven coordinate."""

    group: str
    artifact: str
    version: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


def _pyspark_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_line() -> str:
    """The installed pyspark's ``major.minor`` (e.g. ``4.2``): Delta's artifact names carry it."""
    import pyspark

    return ".".join(pyspark.__version__.split(".")[:2])


DELTA_VERSION = "4.4.0"  # the connector this product is tested with (rfm-spark[spark] pins it)


def delta_artifact() -> Artifact:
    """The connector matching the installed ``delta-spark`` Python package (when there is one,
    as ``rfm-spark[spark]`` installs it) and pyspark."""
    try:
        version = importlib.metadata.version("delta-spark")
    except importlib.metadata.PackageNotFoundError:
        version = DELTA_VERSION
    return Artifact("io.delta", f"delta-spark_{spark_line()}_{SCALA}", version)


def hadoop_version() -> str | None:
    """The Hadoop client version pyspark ships (hadoop-aws must match it exactly)."""
    for name in sorted(os.listdir(_pyspark_dir() / "jars")):
        m = re.fullmatch(r"hadoop-client-api-(\d[\w.]*)\.jar", name)
        if m:
            return m.group(1)
    return None


def s3_artifact() -> Artifact | None:
    """hadoop-aws at pyspark's Hadoop version (the ``s3a://`` file system), None if unknown."""
    version = hadoop_version()
    return Artifact("org.apache.hadoop", "hadoop-aws", version) if version else None


def artifact_name(jar: str) -> str:
    """``jackson-core-2.13.5.jar`` -> ``jackson-core``."""
    m = _JAR_NAME.match(jar)
    return m.group("artifact") if m else jar.removesuffix(".jar")


def default_dir() -> Path:
    """Where jars live: ``$RFM_SPARK_JARS_DIR``, else ``.jars/`` of a source checkout, else the
    user cache (``~/.cache/rfm-spark/jars``)."""
    if os.environ.get(JARS_ENV):
        return Path(os.environ[JARS_ENV]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".jars"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rfm-spark" / "jars"


def bundle_dir(root: Path, artifact: Artifact) -> Path:
    """One folder per resolved coordinate, so a version bump never mixes old and new jars."""
    return root / f"{artifact.artifact}-{artifact.version}"


def installed_jars(artifact: Artifact, root: Path | None = None) -> list[str]:
    """Absolute paths of a completed fetch of ``artifact``; empty when there is none."""
    folder = bundle_dir(root or default_dir(), artifact)
    if not (folder / _COMPLETE).is_file():
        return []
    return sorted(str(p) for p in folder.glob("*.jar"))


def _with_mvn(artifact: Artifact, dest: Path) -> None:
    pom = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rfm-spark</groupId><artifactId>jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency>
    <groupId>{artifact.group}</groupId><artifactId>{artifact.artifact}</artifactId>
    <version>{artifact.version}</version>
  </dependency></dependencies>
</project>
"""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(pom)
        cmd = ["mvn", "-B", "-q", "-f", str(Path(tmp) / "pom.xml")]
        cmd += [f"{MVN_DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime"]
        cmd += [f"-DoutputDirectory={dest}"]
        _run(cmd)


def _with_ivy(artifact: Artifact, dest: Path) -> None:
    ivy = sorted((_pyspark_dir() / "jars").glob("ivy-*.jar"))
    if not ivy:
        raise RuntimeError("pyspark ships no ivy jar")
    cache = Path.home() / ".ivy2.5.2" / "cache"  # the cache Spark's own --packages uses
    cmd = ["java", "-jar", str(ivy[-1]), "-cache", str(cache)]
    cmd += ["-dependency", artifact.group, artifact.artifact, artifact.version]
    cmd += ["-confs", "default", "-retrieve", f"{dest}/[artifact]-[revision](-[classifier]).[ext]"]
    _run(cmd)


def _run(cmd: Sequence[str]) -> None:
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{cmd[0]} exited {out.returncode}: " + " | ".join(tail))


def _drop_shipped(folder: Path) -> None:
    """Remove jars whose artifact pyspark already ships (its copy is the one Spark loads)."""
    shipped = {artifact_name(n) for n in os.listdir(_pyspark_dir() / "jars")}
    for jar in folder.glob("*.jar"):
        if artifact_name(jar.name) in shipped:
            jar.unlink()


def fetch(
    artifact: Artifact, root: Path | None = None, *, log: Callable[[str], None] = print
) -> list[str]:
    """Resolve ``artifact`` and its runtime dependencies into ``root`` (once); return the jars.

    Raises:
        RuntimeError: Neither Maven nor Spark's Ivy could resolve it (the message has both
            resolvers' last lines).
    """
    root = root or default_dir()
    done = installed_jars(artifact, root)
    if done:
        return done
    final = bundle_dir(root, artifact)
    errors = []
    for name, resolver in (("mvn", _with_mvn), ("ivy", _with_ivy)):
        if name == "mvn" and shutil.which("mvn") is None:
            errors.append("mvn: not installed")
            continue
        staging = final.with_name(final.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            log(f"resolving {artifact.coordinate} with {name} into {final}")
            resolver(artifact, staging)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{name}: {exc}")
            shutil.rmtree(staging, ignore_errors=True)
            continue
        _drop_shipped(staging)
        (staging / _COMPLETE).write_text(artifact.coordinate + "\n")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        return installed_jars(artifact, root)
    raise RuntimeError(f"Could not resolve {artifact.coordinate}: " + "; ".join(errors))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rfm_spark.jars",
        description="Fetch the JVM jars rfm-spark adds to local Spark sessions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="resolve the Delta connector (and hadoop-aws) once")
    f.add_argument("--dest", type=Path, default=None, help=f"folder (default {default_dir()})")
    f.add_argument("--no-s3", action="store_true", help="skip hadoop-aws (s3a:// support)")
    sub.add_parser("path", help="print the jars a session would load, one per line")
    args = parser.parse_args(argv)
    wanted = [delta_artifact()]
    s3 = s3_artifact()
    if args.command == "path":
        for artifact in [*wanted, *([s3] if s3 else [])]:
            print("\n".join(installed_jars(artifact)))
        return 0
    if s3 and not args.no_s3:
        wanted.append(s3)
    for artifact in wanted:
        try:
            jars = fetch(artifact, args.dest, log=lambda m: print(m, file=sys.stderr))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{artifact.coordinate}: {len(jars)} jars", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
