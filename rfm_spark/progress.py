"""Progress lines for long stages, on stderr so that stdout stays for results."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints ``[name] step ... done in 3.2 s`` lines; silent when ``quiet``."""

    def __init__(self, name: str, *, quiet: bool = False, stream: TextIO | None = None):
        self.name = name
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def info(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.name}] {message}", file=self.stream, flush=True)

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
