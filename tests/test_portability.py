"""The package runs wherever its session does: nothing in it needs a JVM in this process.

A Spark Connect client (Databricks serverless and shared clusters, ``pyspark-client``) has no
``sparkContext``, no py4j gateway and no RDDs; a classic session on a cluster has them, but
their files live on the driver only. The syntax tree of every module is walked for them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rfm_spark

PACKAGE = Path(rfm_spark.__file__).parent
JVM_ATTRIBUTES = {"sparkContext", "_jvm", "_jsc", "_jsparkSession", "_jdf", "_gateway", "rdd"}
JVM_NAMES = {"SparkContext", "SparkConf", "RDD"}
JVM_MODULES = ("py4j", "pyspark.rdd", "pyspark.context")


def jvm_uses(source: str) -> list[str]:
    """``line: what`` for every use of the JVM-only API in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in JVM_ATTRIBUTES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in JVM_NAMES:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _jvm_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and _jvm_import(node):
            found.append(f"{node.lineno}: from {node.module} import ...")
    return found


def _jvm_import(node: ast.ImportFrom) -> bool:
    module = node.module or ""
    return _jvm_module(module) or any(a.name in JVM_NAMES for a in node.names)


def _jvm_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in JVM_MODULES)


def test_the_walk_finds_every_kind_of_use() -> None:
    source = (
        "import py4j.java_gateway\n"
        "from pyspark import SparkContext\n"
        "x = spark.sparkContext._jvm\n"
        "y = df.rdd.map(f)\n"
        "z = spark._jsc.hadoopConfiguration()\n"
    )
    assert sorted(jvm_uses(source)) == [
        "1: import py4j.java_gateway",
        "2: from pyspark import ...",
        "3: ._jvm",
        "3: .sparkContext",
        "4: .rdd",
        "5: ._jsc",
    ]


def test_no_module_of_the_package_needs_a_jvm_here() -> None:
    found = {
        str(path.relative_to(PACKAGE)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if (uses := jvm_uses(path.read_text()))
    }
    assert found == {}
