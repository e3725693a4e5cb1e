"""A planted campaign effect: extra orders for one campaign's treatment arm.

So that ``rfm-spark campaigns evaluate`` can be checked end to end, the generator can give the
treatment arm of a campaign (its salt and control share, the same
:func:`rfm_spark.experiments.arm` the campaigns run uses) an extra order with probability
``conversion`` on a uniform day of ``[start_date, start_date + days)``. The generator does not
know who a campaign will pick, so every customer of the treatment arm who had signed up by
``start_date`` may get the order; whatever audience the campaign takes on ``start_date``, its
treated customers convert more, by ``conversion * (1 - c)`` for a control conversion ``c``.
Other campaigns' arms are independent of this one's, so they see no effect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.datagen import params as P
from rfm_spark.datagen.distributions import Draws, floor_int
from rfm_spark.errors import UsageError
from rfm_spark.experiments import TREATMENT, arm

PLANTED_ORDER = P.MAX_ORDERS  # the order number of a planted order (others stay below it)


@dataclass(frozen=True)
class PlantedEffect:
    """The campaign whose treatment arm buys more, and how much more.

    Attributes:
        salt: The campaign's split salt (its name unless the campaign file sets ``salt``).
        control_share: The campaign's ``control_share``.
        start_date: The contact day: planted orders fall on it or in the days after it.
        days: Length of the window the planted orders fall in.
        conversion: Chance that a treated customer places a planted order, in (0, 1].
    """

    salt: str
    control_share: float
    start_date: dt.date
    days: int = 14
    conversion: float = 0.1

    def check(self, period: P.Period) -> None:
        """The effect fits the generated period.

        Raises:
            UsageError: A share out of range, or a window outside the period.
        """
        if not 0 <= self.control_share < 1 or not 0 < self.conversion <= 1:
            raise UsageError(
                "demo.effect: control_share must be in [0, 1) and conversion in (0, 1], got "
                f"{self.control_share} and {self.conversion}"
            )
        end = self.start_date + dt.timedelta(days=self.days)
        if self.days < 1 or self.start_date < period.start_date or end > period.end_date:
            raise UsageError(
                f"demo.effect: the window {self.start_date} + {self.days} days must lie inside "
                f"the generated period [{period.start_date}, {period.end_date})"
            )


def planted_orders(
    base: DataFrame, effect: PlantedEffect, seed: int, period: P.Period
) -> DataFrame:
    """The customer rows of ``base`` that get a planted order, with ``_k`` (its number) and
    ``_planted_day`` (its day number)."""
    draws = Draws(seed, ("_c",))
    start = (effect.start_date - period.start_date).days
    chosen = (
        (arm(effect.salt, effect.control_share) == F.lit(TREATMENT))
        & (F.col("_signup") <= F.lit(start))
        & (draws.uniform(P.S_EFFECT) < F.lit(effect.conversion))
    )
    day = start + floor_int(draws.uniform(P.S_EFFECT_DAY) * float(effect.days))
    return base.filter(chosen).withColumns({"_k": F.lit(PLANTED_ORDER), "_planted_day": day})
