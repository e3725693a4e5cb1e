"""The campaign file: the documented example loads; every mistake is named with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfm_spark.campaigns import check_segments, load_campaigns
from rfm_spark.campaigns import spec as documented
from rfm_spark.errors import ConfigError
from rfm_spark.segments import load_scheme

# the example the module documents (the file): the documentation must stay loadable
EXAMPLE = documented.__doc__.split("```yaml\n")[1].split("```")[0]  # type: ignore[union-attr]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaigns.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    spec = load_campaigns(write(tmp_path, EXAMPLE))
    winback, vip = spec.campaigns
    assert winback.audience.is_move and winback.audience.moved_to == "at_risk"
    assert winback.frequency_cap_days == 7 and winback.split_salt == "winback"
    assert vip.audience.attributes == {"country": ["DE", "FR"]} and vip.channel == "push"
    assert winback.consent_column == "email_opt_in" and vip.consent_column == "push_opt_in"
    check_segments(spec, load_scheme("rfm11"))  # every segment named exists


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("channel: email", "channel: fax"), "'campaigns.0.channel'"),
        (("control_share: 0.2", "control_share: 1.5"), "'campaigns.0.control_share'"),
        (("within_days: 14", "within_dayz: 14"), "unknown key 'campaigns.0.audience.within_dayz'"),
        (("name: vip_preview", "name: winback"), "doubled: ['winback']"),
        (("name: vip_preview", "name: vip preview"), "'campaigns.1.name'"),
        (("{segment: champions,", "{segment: champions, moved_to: lost,"), "not both"),
        (("country: [DE, FR]", "country: []"), "list no accepted values"),
        (("channel: push", "channel: push\n    opt_in: false\n    opt_in_column: app"), "drop one"),
    ],
)
def test_a_bad_file_names_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = EXAMPLE.replace(*change)
    assert text != EXAMPLE
    with pytest.raises(ConfigError, match="invalid campaign file") as raised:
        load_campaigns(write(tmp_path, text))
    assert message in str(raised.value)


def test_unknown_segments_and_files_are_named(tmp_path: Path) -> None:
    spec = load_campaigns(write(tmp_path, EXAMPLE.replace("at_risk", "at_rsik")))
    with pytest.raises(
        ConfigError, match="campaign 'winback': no segment 'at_rsik' in scheme rfm11"
    ):
        check_segments(spec, load_scheme("rfm11"))
    with pytest.raises(
        ConfigError, match="does not exist; pass an existing YAML file to --campaigns"
    ):
        load_campaigns(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_campaigns(write(tmp_path, "- just a list\n"))
