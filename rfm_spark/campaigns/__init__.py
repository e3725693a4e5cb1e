"""Campaigns on segments and segment moves, with A/B control groups.

:mod:`rfm_spark.campaigns.spec` reads the campaign file, :mod:`rfm_spark.campaigns.audience`
builds and allots a day's audiences; the arms and the statistics are in
:mod:`rfm_spark.experiments`.
"""

from rfm_spark.campaigns.spec import (
    Audience,
    Campaign,
    CampaignFile,
    check_segments,
    load_campaigns,
)

__all__ = ["Audience", "Campaign", "CampaignFile", "check_segments", "load_campaigns"]
