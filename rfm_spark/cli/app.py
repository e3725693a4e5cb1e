"""The entry point: parse, run the command, and turn every failure into one line and an exit code.

Exit codes: 0 success, 2 usage or configuration error, 1 any other failure, 130 when
interrupted. Schedulers branch on them and read the single stderr line, so Spark and Java
stack traces appear only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from rfm_spark.cli.parser import build_parser
from rfm_spark.errors import RfmError, java_error_line
from rfm_spark.session import release


class _CommandFormat(logging.Formatter):
    """``2026-11-23 09:30:01 [segment] message``: progress lines carry their own ``[name]``;
    other messages of the package get the command's."""

    def __init__(self, command: str) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        if record.name != "rfm_spark.progress":
            record = logging.makeLogRecord(record.__dict__)
            record.msg, record.args = f"[{self.command}] {record.getMessage()}", None
        return super().format(record)


def _setup_logging(args: argparse.Namespace) -> None:
    """The package's progress lines and warnings on stderr, timestamped; ``--quiet`` keeps
    warnings only, ``--verbose`` adds the package's debug lines. Spark's own logging is set by
    the session."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CommandFormat(args.command))
    root = logging.getLogger("rfm_spark")
    root.handlers[:] = [handler]
    if getattr(args, "verbose", False):
        root.setLevel(logging.DEBUG)
    else:
        root.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    root.propagate = False


def main(
    argv: Sequence[str] | None = None, *, run: Callable[[argparse.Namespace], int] | None = None
) -> int:
    """Entry point of the ``rfm-spark`` console script and of the spark-submit jobs.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when ``None``.
        run: Runs the parsed command instead of its own function (tests use it).

    Returns:
        The exit code. argparse exits with 2 itself on a usage error and 0 after ``--help``.
    """
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return (run or args.func)(args)
    except RfmError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"rfm-spark {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"rfm-spark {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # Spark/Java failures: one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        line = java_error_line(exc) or type(exc).__name__
        hint = "" if args.verbose else " (run with --verbose for details)"
        print(f"rfm-spark {args.command}: failed: {line}{hint}", file=sys.stderr)
        return 1
    finally:
        release()


def entry() -> None:
    """Exit the process with :func:`main`'s code."""
    sys.exit(main())
