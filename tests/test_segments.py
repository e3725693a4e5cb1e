from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from rfm_spark.errors import SchemeError
from rfm_spark.segments import assign_segments, build_scheme, load_scheme

ROOT = Path(__file__).resolve().parents[1]


# The default scheme as the product's specification tables it (docs/ explains the segments):
# an independent source, typed from the specification, not generated from rfm11.yaml.
DEFAULT_SCHEME_TABLE = """
| champions | 555 554 544 545 454 455 445 |
| loyal | 543 444 435 355 354 345 344 335 |
| potential_loyalist | 553 551 552 541 542 533 532 531 452 451 442 441 431 453 433 432 423 353 352 351 342 341 333 323 |
| new_customers | 512 511 422 421 412 411 311 |
| promising | 525 524 523 522 521 515 514 513 425 424 413 414 415 315 314 313 |
| need_attention | 535 534 443 434 343 334 325 324 |
| about_to_sleep | 331 321 312 221 213 231 241 251 |
| at_risk | 255 254 245 244 253 252 243 242 235 234 225 224 153 152 145 143 142 135 134 133 125 124 |
| cannot_lose_them | 155 154 144 214 215 115 114 113 |
| hibernating | 332 322 233 232 223 222 132 123 122 212 211 |
| lost | 111 112 121 131 141 151 |
"""


def design_table() -> dict[str, str]:
    """The default scheme from :data:`DEFAULT_SCHEME_TABLE`."""
    text = DEFAULT_SCHEME_TABLE
    mapping: dict[str, str] = {}
    for name, codes in re.findall(r"^\| ([a-z_]+) \| ([0-9 ]+) \|$", text, flags=re.M):
        for code in codes.split():
            mapping[code] = name
    return mapping


def rf_grid(r: int, f: int) -> str:
    """The classic R/F grid of the specification, written as rules."""
    if r <= 2:
        return "hibernating" if f <= 2 else "at_risk" if f <= 4 else "cannot_lose_them"
    if r == 3 and f <= 2:
        return "about_to_sleep"
    if r == 3 and f == 3:
        return "need_attention"
    if r in (3, 4) and f >= 4:
        return "loyal"
    if f == 1:
        return "promising" if r == 4 else "new_customers"
    if f in (2, 3):
        return "potential_loyalist"
    return "champions"


def test_default_scheme_covers_all_codes_once() -> None:
    scheme = load_scheme("rfm11")
    codes = {"".join(map(str, c)) for c in itertools.product(range(1, 6), repeat=3)}
    assert set(scheme.mapping) == codes
    assert len(scheme.segments) == 11
    assert set(scheme.mapping.values()) == set(scheme.segments)


def test_default_scheme_matches_design_table() -> None:
    assert dict(load_scheme("rfm11").mapping) == design_table()


def test_rf_scheme_matches_grid_rules() -> None:
    scheme = load_scheme("rf10")
    assert scheme.axes == ("r", "f")
    expected = {f"{r}{f}": rf_grid(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert dict(scheme.mapping) == expected
    assert len(set(expected.values())) == 10


def test_shipped_conf_copies_are_the_packaged_schemes() -> None:
    for name in ("rfm11", "rf10"):
        assert (
            load_scheme(str(ROOT / "conf" / "segments" / f"{name}.yaml")).mapping
            == load_scheme(name).mapping
        )


def test_broken_scheme_names_missing_doubled_and_unreachable() -> None:
    spec = {
        "name": "broken",
        "axes": ["r", "f"],
        "bins": 2,
        "segments": {"a": {"codes": [11, 12]}, "b": {"codes": [12]}, "c": {"codes": [21]}},
    }
    with pytest.raises(SchemeError) as err:
        build_scheme(spec)
    msg = str(err.value)
    assert "1 code(s) map to no segment: 22" in msg
    assert "12 -> a, b" in msg
    assert "segment(s) no code reaches alone: b" in msg


def test_range_table_that_cannot_reach_segments_is_rejected() -> None:
    # first-match "R vs average(F, M)" tables overlap; as ranges they double-map codes
    spec = {
        "axes": ["r", "f"],
        "bins": 5,
        "segments": {
            "champions": {"ranges": [{"r": [4, 5], "f": [4, 5]}]},
            "loyal": {"ranges": [{"r": [2, 5], "f": [3, 5]}]},
            "rest": {"ranges": [{"r": [1, 5], "f": [1, 2]}, {"r": [1, 1], "f": [3, 5]}]},
        },
    }
    with pytest.raises(
        SchemeError, match=r"4 code\(s\) map to more than one segment: 44 -> champions, loyal"
    ):
        build_scheme(spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"axes": ["r", "m"], "segments": {"a": {"codes": [11]}}}, "axes must be"),
        ({"bins": 2, "axes": ["r", "f"], "segments": {"a": {"codes": [13]}}}, "each in 1..2"),
        (
            {"bins": 2, "axes": ["r", "f"], "segments": {"a": {"ranges": [{"x": [1, 2]}]}}},
            "not in the scheme's axes",
        ),
        ({"bins": 2, "segments": {"a": {"codez": [1]}}}, "needs 'codes"),
        ({"colour": "red", "segments": {}}, "unknown key"),
    ],
)
def test_malformed_schemes(spec: dict, message: str) -> None:
    with pytest.raises(SchemeError, match=message):
        build_scheme(spec)


def test_unknown_scheme_name(tmp_path: Path) -> None:
    with pytest.raises(SchemeError, match="neither a built-in scheme"):
        load_scheme(str(tmp_path / "missing.yaml"))


def test_assign_segments_uses_scheme_axes(spark: SparkSession) -> None:
    rows = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in (1, 5)]
    df = spark.createDataFrame(rows, "r_score int, f_score int, m_score int")
    rfm = load_scheme("rfm11")
    rf = load_scheme("rf10")
    got = {
        (r["r_score"], r["f_score"], r["m_score"]): (r["rfm_code"], r["segment"])
        for r in assign_segments(df, scheme=rfm).collect()
    }
    assert got == {(r, f, m): (f"{r}{f}{m}", rfm.mapping[f"{r}{f}{m}"]) for r, f, m in rows}
    got_rf = {
        (r["r_score"], r["f_score"]): r["segment"] for r in assign_segments(df, scheme=rf).collect()
    }
    assert got_rf == {(r, f): rf_grid(r, f) for r, f, _ in rows}
