"""Progress lines for long stages, through ``logging`` so that stdout stays for results.

Each line goes to the ``rfm_spark.progress`` logger at INFO as ``[name] message``; the command
line prints them on stderr with a timestamp (``2026-11-23 09:30:01 [segment] scoring ...:
done in 3.2 s``), a scheduler's log keeps them, and a library user decides with their own
logging setup whether to see them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("rfm_spark.progress")


class Progress:
    """Logs ``[name] step ...`` and ``[name] step: done in 3.2 s``; silent when ``quiet``."""

    def __init__(self, name: str, *, quiet: bool = False):
        self.name = name
        self.quiet = quiet
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def info(self, message: str) -> None:
        if not self.quiet:
            log.info("[%s] %s", self.name, message)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.info(f"{label} ...")
        t0 = time.monotonic()
        yield
        took = time.monotonic() - t0
        self.timings[label] = round(took, 3)
        self.info(f"{label}: done in {took:.1f} s")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
