"""The ``rfm-spark`` command line.

``main`` is the console script (``rfm-spark``), ``python -m rfm_spark.cli`` and the entry of
the spark-submit jobs. The package keeps the parser (:mod:`.parser`), the commands grouped by
what they do (:mod:`.runs`, :mod:`.reads`, :mod:`.training`, :mod:`.maintenance`) and the
terminal output (:mod:`.render`) apart, so a change to one does not mean reading the others.
"""

from __future__ import annotations

from rfm_spark.cli.app import entry, main
from rfm_spark.cli.parser import build_parser
from rfm_spark.cli.render import format_table

__all__ = ["build_parser", "entry", "format_table", "main"]
