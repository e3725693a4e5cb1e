"""Random draws as Column expressions: hash uniforms, normals, categorical, geometric, Poisson.

Randomness is not ``F.rand`` but a hash of ``(seed, salt, key columns)`` turned into a uniform
number, so every value is a pure function of its keys: the same seed gives the same rows
whatever the number of partitions or executors, and no shuffle is ever needed. The helpers take
and return :class:`~pyspark.sql.Column` objects, so distributions compose as Python
(``geometric(draws.uniform(S_ITEMS), 0.375)``) and Spark evaluates them without Python UDFs.

Building a Column costs Py4J round trips (about ten for an operator or method, three for a
function), so the seed literal and key columns of a :class:`Draws` are built once and reused,
as are draws needed more than once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pyspark.sql import Column
from pyspark.sql import functions as F

_MASK53 = (1 << 53) - 1


def uniform(seed: Column, salt: int, *keys: Column) -> Column:
    """Uniform double in [0, 1), a pure function of the seed, the salt and the key columns.

    ``seed`` is the seed as a bigint literal (see :func:`seed_literal`). The low 53 bits of
    ``xxhash64`` fill a double's mantissa exactly.
    """
    h = F.xxhash64(seed, F.lit(salt), *keys)
    return h.bitwiseAND(F.lit(_MASK53)).cast("double") / float(1 << 53)


def seed_literal(seed: int) -> Column:
    """The seed as the bigint literal every hash starts with (its type is part of the hash)."""
    return F.lit(seed).cast("bigint")


def standard_normal(u1: Column, u2: Column) -> Column:
    """Standard normal from two independent uniforms (Box-Muller)."""
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2 * math.pi * u2)


@dataclass(frozen=True)
class Draws:
    """Independent draws for the rows identified by ``keys``, one stream per salt.

    Attributes:
        seed: the generator's seed.
        keys: names of the columns that identify a row (e.g. customer, order).
    """

    seed: int
    keys: tuple[str, ...]

    @cached_property
    def _seed(self) -> Column:
        return seed_literal(self.seed)

    @cached_property
    def _keys(self) -> tuple[Column, ...]:
        return tuple(F.col(k) for k in self.keys)

    def uniform(self, salt: int, *more: str) -> Column:
        """Uniform in [0, 1) for the row (and the extra key columns ``more``)."""
        return uniform(self._seed, salt, *self._keys, *[F.col(k) for k in more])

    def normal(self, salt: int, *more: str) -> Column:
        """Standard normal for the row; uses salts ``salt`` and ``salt + 1``."""
        return standard_normal(self.uniform(salt, *more), self.uniform(salt + 1, *more))


def floor_int(x: Column) -> Column:
    """``floor(x)`` as an int."""
    return F.floor(x).cast("int")


def first_match(branches: Sequence[tuple[Column, object]]) -> Column:
    """``CASE WHEN condition THEN value ...`` over ``(condition, value)`` pairs (no ELSE)."""
    (condition, value), *rest = branches
    chosen = F.when(condition, value)
    for condition, value in rest:
        chosen = chosen.when(condition, value)
    return chosen


def pick(u: Column, weights: Sequence[float]) -> Column:
    """0-based index drawn with the given weights from the uniform ``u``."""
    if len(weights) < 2:
        return F.lit(0)
    total = float(sum(weights))
    bounds = itertools.accumulate(w / total for w in weights[:-1])
    return first_match([(u < bound, i) for i, bound in enumerate(bounds)]).otherwise(
        len(weights) - 1
    )


def element(values: Sequence[str] | Sequence[float], index0: Column) -> Column:
    """``values[index0]`` from a literal array."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), index0 + 1)


def geometric(u: Column, q: float) -> Column:
    """Number of successes before the first failure, P(X >= m) = q**m (mean q / (1 - q))."""
    return floor_int(F.log(1.0 - u) / math.log(q))


def poisson(lam: Column, u: Column, z: Column, cap: int) -> Column:
    """Poisson draw for mean ``lam``, at most ``cap``: exact inverse CDF below 30, normal above.

    The exact branch walks the CDF (a fold over a short sequence, no UDF) up to lam + 6 sd; the
    tail beyond is < 1e-7. ``u`` is the uniform of the exact branch, ``z`` the normal of the
    approximation.
    """

    def step(acc: Column, _: Column) -> Column:
        p = acc["p"] * lam / (acc["n"] + 1)
        grown = F.struct((acc["n"] + 1).alias("n"), p.alias("p"), (acc["cdf"] + p).alias("cdf"))
        return F.when(acc["cdf"] < u, grown).otherwise(acc)

    first = F.exp(-lam)
    start = F.struct(F.lit(0).alias("n"), first.alias("p"), first.alias("cdf"))
    steps = floor_int(lam + F.sqrt(lam) * 6.0 + 6.0)
    exact = F.aggregate(F.sequence(F.lit(0), steps), start, step, lambda acc: acc["n"])
    approx = F.greatest(F.lit(0), floor_int(lam + F.sqrt(lam) * z + 0.5))
    return F.least(F.when(lam < 30.0, exact).otherwise(approx), F.lit(cap))
