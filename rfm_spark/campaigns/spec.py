"""The campaign file: which customers each campaign reaches, how, and what it holds out.

```yaml
campaigns:
  - name: winback
    audience: {moved_from: champions, moved_to: at_risk, within_days: 14}
    channel: email
    control_share: 0.2
    frequency_cap_days: 7
  - name: vip_preview
    audience: {segment: champions, attributes: {country: [DE, FR]}}
    channel: push
    control_share: 0.1
```

Loaded into frozen pydantic models that forbid unknown keys, like the main configuration: a
bad key is named with its place (``campaigns.0.audience.moved_to``). Segment names are checked
against the scheme when a run knows it (:func:`check_segments`). Campaigns are listed in
priority order: the frequency cap gives a customer to the first campaign that wants them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rfm_spark.config import format_error, read_mapping
from rfm_spark.errors import ConfigError
from rfm_spark.segments import Scheme

Channel = Literal["email", "push", "sms"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Audience(_Model):
    """Who a campaign reaches on a day: customers now in ``segment``, or who moved from
    ``moved_from`` (any segment when absent) to ``moved_to`` (any other when absent) within
    ``within_days``; narrowed by customer ``attributes`` (customers-table column -> accepted
    values), by ``attribute_segments`` (dimension -> accepted segments, read from the snapshot's
    ``attribute_segments``) and by a k-means ``cluster`` (its id or name)."""

    segment: str | None = None
    moved_from: str | None = None
    moved_to: str | None = None
    within_days: int = Field(default=14, ge=1, le=3650)
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    attribute_segments: dict[str, list[str]] = Field(default_factory=dict)
    cluster: int | str | None = None

    @property
    def is_move(self) -> bool:
        return self.moved_from is not None or self.moved_to is not None

    @model_validator(mode="after")
    def _one_kind(self) -> Audience:
        if self.segment is not None and self.is_move:
            raise ValueError(
                "give either segment (customers now in it) or moved_from/moved_to (customers "
                "who moved), not both; moved_to names the segment they are in now"
            )
        if self.segment is None and not self.is_move and self.cluster is None:
            raise ValueError("needs a segment, a move (moved_from/moved_to) or a cluster")
        empty = [k for k, v in {**self.attributes, **self.attribute_segments}.items() if not v]
        if empty:
            raise ValueError(f"attributes {empty} list no accepted values")
        return self

    def segments(self) -> list[str]:
        """The segment names the audience refers to."""
        return [s for s in (self.segment, self.moved_from, self.moved_to) if s is not None]


class Campaign(_Model):
    """One campaign: its audience, channel, control group and contact cap."""

    name: str
    audience: Audience
    channel: Channel
    control_share: float = Field(default=0.1, ge=0, lt=1)
    frequency_cap_days: int | None = Field(default=None, ge=1, le=3650)
    salt: str | None = None  # the A/B split's salt; the campaign's name when absent
    # reach only customers whose opt-in column (``<channel>_opt_in`` unless named) is true;
    # ``opt_in: false`` for messages that need no consent
    opt_in: bool = True
    opt_in_column: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '_' and '-' (it names files and table rows)")
        return v

    @model_validator(mode="after")
    def _consent(self) -> Campaign:
        if self.opt_in_column is not None and not self.opt_in:
            raise ValueError("opt_in_column is set but opt_in is false; drop one of them")
        return self

    @property
    def split_salt(self) -> str:
        return self.salt or self.name

    @property
    def consent_column(self) -> str | None:
        """The customers column that must be true for a customer to be reached (None: any)."""
        if not self.opt_in:
            return None
        return self.opt_in_column or f"{self.channel}_opt_in"

    def customer_columns(self) -> list[str]:
        """The customers-table columns the campaign filters on."""
        consent = [self.consent_column] if self.consent_column else []
        return [*self.audience.attributes, *consent]


class CampaignFile(_Model):
    """The campaigns of one file, in priority order."""

    campaigns: list[Campaign] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CampaignFile:
        names = [c.name for c in self.campaigns]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"campaign names must be unique; doubled: {doubled}")
        return self


def load_campaigns(path: str | Path) -> CampaignFile:
    """Load and validate a campaign file.

    Raises:
        ConfigError: Missing file, not YAML, or a bad key (named with its place).
    """
    data = read_mapping(path, "campaign file", "--campaigns")
    try:
        return CampaignFile.model_validate(data)
    except ValidationError as exc:
        message = format_error(exc, str(path), "campaign file", "docs/campaigns.md")
        raise ConfigError(message) from None


def check_segments(campaigns: CampaignFile, scheme: Scheme) -> None:
    """Every segment a campaign names exists in the scheme.

    Raises:
        ConfigError: Names the campaign, the unknown segment and the scheme's segments.
    """
    known = set(scheme.segments)
    for c in campaigns.campaigns:
        unknown = [s for s in c.audience.segments() if s not in known]
        if unknown:
            raise ConfigError(
                f"campaign {c.name!r}: no segment {unknown[0]!r} in scheme {scheme.name}; "
                f"its segments are {', '.join(scheme.segments)}"
            )
