"""Checks of the generator's arguments, with messages that name the command-line flag to fix.

The checks run before any DataFrame is defined, so a bad argument fails fast and nothing is
written.
"""

from __future__ import annotations

import datetime as dt

from rfm_spark.errors import UsageError


def check_int(name: str, value: object, minimum: int, flag: str) -> int:
    """``value`` if it is a whole number of at least ``minimum``.

    Raises:
        UsageError: ``value`` is not an int (bools are refused) or is too small.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}; pass e.g. {flag} 1000")
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}; pass {flag} {minimum}")
    return value


def check_args(customers: int, days: int, end_date: dt.date, seed: int) -> None:
    """Check the arguments every table shares.

    Raises:
        UsageError: a size is not a positive whole number, the seed does not fit 64 bits, the
            end date is not a date or the period starts before 1900.
    """
    check_int("customers", customers, 1, "--customers")
    check_int("days", days, 1, "--days")
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        raise UsageError(f"seed must be a 64-bit whole number, got {seed!r}; pass e.g. --seed 42")
    if isinstance(end_date, dt.datetime) or not isinstance(end_date, dt.date):
        raise UsageError(
            f"end_date must be a date, got {end_date!r}; pass e.g. --end-date 2026-11-23"
        )
    if end_date.toordinal() - days < dt.date(1900, 1, 1).toordinal():
        raise UsageError(f"end_date {end_date} minus {days} days is before 1900; use fewer days")
