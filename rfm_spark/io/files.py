"""Small files through Hadoop's FileSystem: local paths and any Hadoop URI (s3a://, abfss://).

The warehouse's side files (saved models' metadata, streaming checkpoints, the demo data's
manifest) live wherever the tables do, so they are read and written through the same file
system Spark uses, not Python's ``open``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession

from rfm_spark.errors import EnvironmentProblem
from rfm_spark.paths import is_uri


def location(path: str) -> str:
    """``path`` as Hadoop should see it: a local path made absolute (``./warehouse`` is not)
    with a ``file://`` scheme, neither escaped (Hadoop's ``Path`` would take ``%20`` for the
    three characters) nor with its symbolic links resolved (Spark keeps the path as given)."""
    return path if is_uri(path) else "file://" + os.path.abspath(path)


class HadoopFiles:
    """Small text files and folder listings on the file system of a path."""

    def __init__(self, spark: SparkSession) -> None:
        self.jvm: Any = spark.sparkContext._jvm
        self.conf: Any = spark.sparkContext._jsc.hadoopConfiguration()

    def fs(self, path: str) -> tuple[Any, Any]:
        """The file system of ``path`` and ``path`` as a Hadoop ``Path``."""
        p = self.jvm.org.apache.hadoop.fs.Path(location(path))
        fs = p.getFileSystem(self.conf)
        if self.jvm.org.apache.hadoop.fs.LocalFileSystem._java_lang_class.isInstance(fs):
            fs = fs.getRawFileSystem()  # no .crc side files next to ours
        return fs, p

    def exists(self, path: str) -> bool:
        fs, p = self.fs(path)
        return bool(fs.exists(p))

    def delete(self, path: str) -> None:
        """Delete a file or a whole folder (nothing when it is not there)."""
        fs, p = self.fs(path)
        fs.delete(p, True)

    def read(self, path: str) -> str:
        return "\n".join(self.lines(path))

    def lines(self, path: str) -> Iterator[str]:
        """The lines of a text file, read as they are consumed."""
        fs, p = self.fs(path)
        stream = fs.open(p)
        try:
            reader = self.jvm.java.io.BufferedReader(
                self.jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            while (line := reader.readLine()) is not None:
                yield str(line)
        finally:
            stream.close()

    def write(self, path: str, text: str) -> None:
        """Write ``text``, replacing the file as one rename where the file system allows it.

        Raises:
            EnvironmentProblem: The file system refused the rename.
        """
        fs, p = self.fs(path)
        tmp = self.jvm.org.apache.hadoop.fs.Path(location(path) + ".tmp")
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        if not fs.rename(tmp, p):
            fs.delete(p, False)
            if not fs.rename(tmp, p):
                raise EnvironmentProblem(f"could not write {path}: the file system refused")

    def children(self, path: str) -> list[tuple[str, bool]]:
        """The names in a folder with whether each is a folder (empty when it is not there)."""
        fs, p = self.fs(path)
        if not fs.exists(p):
            return []
        return [(str(s.getPath().getName()), bool(s.isDirectory())) for s in fs.listStatus(p)]

    def versions(self, root: str) -> list[int]:
        """The numbered versions saved under ``root`` (its folders ``v1``, ``v2``, ...), in
        order: how models and fits are kept under the warehouse."""
        return sorted(
            int(name[1:])
            for name, folder in self.children(root)
            if folder and name.startswith("v") and name[1:].isdigit()
        )

    def data_files(self, folder: str) -> dict[str, int]:
        """The files under ``folder`` (full location -> modification time in ms), without the
        hidden ones Spark's readers skip (see :func:`_hidden`)."""
        fs, p = self.fs(folder)
        if not fs.exists(p):
            return {}
        root = str(p.toUri().getPath()).rstrip("/")
        found: dict[str, int] = {}
        files = fs.listFiles(p, True)
        while files.hasNext():
            status = files.next()
            path = status.getPath()
            relative = str(path.toUri().getPath())[len(root) :]
            if not any(_hidden(part) for part in relative.split("/") if part):
                found[str(path.toUri())] = int(status.getModificationTime())
        return found


def _hidden(name: str) -> bool:
    """A file or folder name Spark's file readers skip: starting with ``.`` or ``_``, except
    partition folders such as ``_k=v``."""
    return name.startswith(".") or (name.startswith("_") and "=" not in name)
