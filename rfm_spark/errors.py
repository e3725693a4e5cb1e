"""Errors raised by rfm-spark.

Every error says what is wrong, what was found and how to fix it. The CLI maps
:class:`UsageError` (and its subclasses) to exit code 2 and every other
:class:`RfmError` to exit code 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class RfmError(Exception):
    """Base class of every error rfm-spark raises on purpose."""

    exit_code = 1


class UsageError(RfmError):
    """The command line or the configuration is wrong; the user can fix it (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or value is invalid."""


class SchemeError(ConfigError):
    """A segment scheme does not map every score code to exactly one segment."""


class InputError(RfmError):
    """The input data cannot be used: missing path, missing columns, unreadable files."""

    exit_code = 2


class DataError(RfmError):
    """The data was readable but cannot be segmented: an empty input, unreadable files, too
    many bad rows (exit 1)."""


class MissingColumnsError(InputError):
    """Required input columns are missing."""

    def __init__(self, what: str, missing: Iterable[str], present: Iterable[str], hint: str = ""):
        self.missing = sorted(missing)
        self.present = list(present)
        msg = (
            f"{what} is missing column(s) {', '.join(self.missing)}; "
            f"present: {', '.join(self.present) or '(none)'}."
        )
        if hint:
            msg += f" {hint}"
        super().__init__(msg)


class EnvironmentProblem(RfmError):
    """The runtime environment cannot run Spark (e.g. Java missing or too old)."""


class TableError(RfmError):
    """A Delta table cannot be read or written as asked."""


class ConcurrentWriteError(TableError):
    """Another writer changed the table while this run was committing."""


class TransitionError(RfmError):
    """Transitions cannot be computed as asked (exit 1)."""


class TransitionUsageError(TransitionError, UsageError):
    """Transitions were asked for something the user can fix: a snapshot that does not exist,
    clusters that were never trained, an unknown segment or output format (exit 2)."""

    exit_code = 2


class ModelError(RfmError):
    """A cluster model cannot be trained, saved, loaded or applied as asked."""


_ERROR_CLASS = re.compile(r"\[[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*\] .*")


def java_error_line(exc: BaseException, limit: int = 400) -> str | None:
    """The one line that says what went wrong in a Spark/Java failure, without stack frames.

    Prefers Spark's own error message (``[ERROR_CLASS] message``, which names the file or the
    column), then the innermost ``Caused by:``, then the first line of the text.
    """
    text = str(exc).strip()
    if not text:
        return None
    lines = [line.strip().removeprefix(": ").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("at ", "..."))]
    for line in lines:
        found = _ERROR_CLASS.search(line)
        if found:
            return found.group(0).split(" SQLSTATE")[0][:limit]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    if causes:
        return causes[-1][:limit]
    for line in lines:
        if not line.startswith(("JVM stacktrace", "Traceback")):
            return line[:limit]
    return None
