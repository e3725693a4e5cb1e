"""Property tests (hypothesis) of scoring and of scheme validation on arbitrary inputs.

Every expectation comes from a pure-Python reference written here from the documented rules
(``ScoringSettings`` / ``Thresholds`` in rfm_spark/config.py), not
from the code under test. Spark calls are slow, so the Spark properties draw few examples with
rich data (several groups, ties, negatives, extreme decimals, awkward group column names) and
the pure-Python properties (scheme validation) draw many.

Measures are never null here: features always have a recency, a frequency and a net spend
(docs/tables.md), and no rule says what a missing measure should score. Group values may
be null: nulls form their own group.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from rfm_spark.config import ScoringSettings, Thresholds
from rfm_spark.errors import SchemeError
from rfm_spark.scoring import score_ntile, score_quantile, score_thresholds
from rfm_spark.segments import Scheme, assign_segments, build_scheme, load_scheme

# Spark examples cost seconds each (and the test machine is shared): few, with rich data
SPARK = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NTILE = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=250, deadline=None)

# group columns with names that break naive column references (a dot, a backtick, quotes)
G1 = "country code"
G2 = "re.gion `x` 'y'"
SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("recency_days", T.IntegerType()),
        T.StructField("frequency", T.LongType()),
        T.StructField("monetary", T.DecimalType(18, 2)),
        T.StructField(G1, T.StringType()),
        T.StructField(G2, T.StringType()),
    ]
)
MEASURE = {"r": "recency_days", "f": "frequency", "m": "monetary"}
SCORE = {"r": "r_score", "f": "f_score", "m": "m_score"}
MAX_DEC = Decimal("9999999999999999.99")

# ---- strategies: features -----------------------------------------------------------------------

recency = st.one_of(
    st.sampled_from([0, 1, 1, 2, 30, 365]),  # ties
    st.integers(-1000, 1000),
    st.integers(-(2**31) + 1, 2**31 - 1),  # +-(2^31 - 1): R's sort key is -recency
)
frequency = st.one_of(
    st.sampled_from([0, 1, 1, 1, 2, 5]), st.integers(-5, 50), st.integers(-(2**63), 2**63 - 1)
)
monetary = st.one_of(
    st.sampled_from([Decimal("0.00"), Decimal("9.99"), Decimal("-12.50"), Decimal("0.01")]),
    st.decimals(min_value=-MAX_DEC, max_value=MAX_DEC, places=2, allow_nan=False),
    st.sampled_from([MAX_DEC, -MAX_DEC, Decimal("-0.01")]),
)
# "|" in group values: two columns whose text joined by "|" is equal must stay two groups
group_pair = st.one_of(
    st.sampled_from([("DE", "x"), ("FR", "x"), ("DE", None), (None, None)]),
    st.sampled_from([("a|b", "c"), ("a", "b|c"), ("(null)", None), ("", "")]),
    st.tuples(st.text(max_size=3), st.none() | st.text(max_size=3)),  # often groups of one
)
customer_id = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6
)  # any text: Python's and Spark's string orders must agree for the key ranges


@st.composite
def feature_rows(draw: Any, max_size: int = 60) -> list[tuple[Any, ...]]:
    ids = draw(st.lists(customer_id, min_size=1, max_size=max_size, unique=True))
    # a few distinct values per measure in each example, so that ties are common
    r_pool = draw(st.lists(recency, min_size=1, max_size=6))
    f_pool = draw(st.lists(frequency, min_size=1, max_size=6))
    m_pool = draw(st.lists(monetary, min_size=1, max_size=6))
    g_pool = draw(st.lists(group_pair, min_size=1, max_size=5))
    rows = []
    for cid in ids:
        g1, g2 = draw(st.sampled_from(g_pool))
        rows.append(
            (
                cid,
                draw(st.sampled_from(r_pool)),
                draw(st.sampled_from(f_pool)),
                draw(st.sampled_from(m_pool)),
                g1,
                g2,
            )
        )
    return rows


def frame(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def by_group(rows: Sequence[tuple[Any, ...]], grouped: bool) -> dict[Any, list[tuple[Any, ...]]]:
    """Rows per group (the raw values: None is its own group, distinct from the text "(null)")."""
    out: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        out[(row[4], row[5]) if grouped else ()].append(row)
    return out


def collected(df: DataFrame) -> dict[str, dict[str, int]]:
    return {
        r["customer_id"]: {a: r[SCORE[a]] for a in SCORE}
        for r in df.select("customer_id", *SCORE.values()).collect()
    }


def value(row: tuple[Any, ...], axis: str) -> Any:
    return row[{"r": 1, "f": 2, "m": 3}[axis]]


# ---- ntile --------------------------------------------------------------------------------------


def reference_ntile(rows: Sequence[tuple[Any, ...]], bins: int, axis: str) -> dict[str, int]:
    """Spark's ntile(bins) over the scoring order, by hand: the first ``n % bins`` buckets hold
    one row more; R orders by recency descending, F and M ascending, ties by customer_id."""
    ordered = sorted(rows, key=lambda r: (-value(r, axis) if axis == "r" else value(r, axis), r[0]))
    n = len(ordered)
    size, extra = divmod(n, bins)
    out = {}
    start = 0
    for bucket in range(1, bins + 1):
        count = size + (1 if bucket <= extra else 0)
        for row in ordered[start : start + count]:
            out[row[0]] = bucket
        start += count
    return out


@NTILE
@given(
    rows=feature_rows(),
    bins=st.integers(2, 10),
    ranges=st.integers(1, 6),
    grouped=st.booleans(),
)
@example(  # two groups whose values joined by "|" read the same; groups of one; None vs "(null)"
    rows=[
        ("a", 5, 1, Decimal("1.00"), "a|b", "c"),
        ("b", 3, 2, Decimal("2.00"), "a", "b|c"),
        ("c", 1, 3, Decimal("3.00"), "a", "b|c"),
        ("d", 1, 9, MAX_DEC, "(null)", None),
        ("e", 2, 4, Decimal("-4.00"), None, None),
        ("f", 9, 0, Decimal("-0.01"), None, None),
    ],
    bins=2,
    ranges=3,
    grouped=True,
)
def test_ntile_scores_are_exact_ntile_buckets(
    spark: SparkSession, rows: list[tuple[Any, ...]], bins: int, ranges: int, grouped: bool
) -> None:
    out, info = score_ntile(
        frame(spark, rows), bins=bins, partition_by=[G1, G2] if grouped else [], ranges=ranges
    )
    got = collected(out)
    assert sorted(got) == sorted(r[0] for r in rows)  # one row per customer, none lost
    assert info.method == "ntile" and info.bins == bins
    for group in by_group(rows, grouped).values():
        for axis in ("r", "f", "m"):
            scores = {r[0]: got[r[0]][axis] for r in group}
            assert all(1 <= s <= bins for s in scores.values())
            # bucket sizes differ by at most one, larger buckets first, no gaps
            sizes = Counter(scores.values())
            used = sorted(sizes)
            assert used == list(range(1, min(bins, len(group)) + 1))
            counts = [sizes[s] for s in used]
            assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)
            # the scoring order: a later row never gets a lower bucket
            assert scores == reference_ntile(group, bins, axis), axis


# ---- quantile -----------------------------------------------------------------------------------


@SPARK
@given(rows=feature_rows(), bins=st.integers(2, 10), grouped=st.booleans())
@example(  # one row; and the "|" collision between two groups' keys
    rows=[("a", 1, 1, Decimal("1.00"), "DE", None)], bins=5, grouped=False
)
@example(
    rows=[
        *[(f"x{i}", i, i, Decimal(i), "a|b", "c") for i in range(6)],
        *[(f"y{i}", 100 + i, 100 + i, Decimal(100 + i), "a", "b|c") for i in range(6)],
    ],
    bins=2,
    grouped=True,
)
def test_quantile_ties_share_a_score_and_higher_is_never_worse(
    spark: SparkSession, rows: list[tuple[Any, ...]], bins: int, grouped: bool
) -> None:
    # accuracy 1/0.0001 = 10000 >= the rows of any group: percentile_approx is exact here
    out, info = score_quantile(
        frame(spark, rows),
        bins=bins,
        partition_by=[G1, G2] if grouped else [],
        relative_error=0.0001,
    )
    got = collected(out)
    assert sorted(got) == sorted(r[0] for r in rows)
    for cuts_per_group in info.cut_points.values():
        for cuts in cuts_per_group.values():
            assert len(cuts) == bins - 1 and cuts == sorted(cuts)
    groups = by_group(rows, grouped)
    # the recorded key of a group: values joined by "|", a null as "(null)" (not always unique)
    keys = {g: "|".join("(null)" if v is None else v for v in g) for g in groups}
    for g, group in groups.items():
        for axis in ("r", "f", "m"):
            pairs = sorted((float(value(r, axis)), got[r[0]][axis]) for r in group)
            assert all(1 <= s <= bins for _, s in pairs)
            for (v1, s1), (v2, s2) in itertools.pairwise(pairs):
                if v1 == v2:
                    assert s1 == s2, (axis, v1)  # equal values always share a score
                elif axis == "r":
                    assert s2 <= s1, (axis, v1, v2)  # more days is never better
                else:
                    assert s2 >= s1, (axis, v1, v2)  # more is never worse
            # the group's own cut points (exact quantiles: numpy's inverted_cdf) decide the score
            cuts = np.quantile(
                [v for v, _ in pairs], [i / bins for i in range(1, bins)], method="inverted_cdf"
            )
            for v, s in pairs:
                below = int((cuts < v).sum())
                assert s == (bins - below if axis == "r" else 1 + below), (axis, v, list(cuts))
            # a score reported as collapsed (unreachable) is never given
            if list(keys.values()).count(keys[g]) == 1:
                collapsed = set(info.collapsed.get(axis, {}).get(keys[g], []))
                assert not collapsed & {s for _, s in pairs}, (axis, keys[g])


# ---- thresholds ---------------------------------------------------------------------------------


def reference_threshold(axis: str, v: float, cuts: Sequence[float], bins: int) -> int:
    """config.Thresholds: recency cut points are upper bounds of the best scores
    (``recency <= recency[0]`` scores ``bins``); frequency and monetary cut points are lower
    bounds of scores 2..bins (``value >= cuts[-1]`` scores ``bins``)."""
    if axis == "r":
        return next((bins - i for i, c in enumerate(cuts) if v <= c), 1)
    return 1 + max((i + 1 for i, c in enumerate(cuts) if v >= c), default=0)


cut_value = st.one_of(
    st.integers(-1000, 1000).map(float),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e19, max_value=1e19),
)


@st.composite
def thresholds(draw: Any) -> tuple[int, Thresholds]:
    bins = draw(st.integers(2, 10))

    def cuts() -> list[float]:
        return sorted(draw(st.lists(cut_value, min_size=bins - 1, max_size=bins - 1, unique=True)))

    t = Thresholds(recency=cuts(), frequency=cuts(), monetary=cuts())
    ScoringSettings(method="thresholds", bins=bins, thresholds=t)  # a configurable table
    return bins, t


@SPARK
@given(rows=feature_rows(), spec=thresholds(), data=st.data())
def test_thresholds_match_the_cut_rule_and_are_monotone(
    spark: SparkSession,
    rows: list[tuple[Any, ...]],
    spec: tuple[int, Thresholds],
    data: st.DataObject,
) -> None:
    bins, t = spec
    lists = {"r": t.recency, "f": t.frequency, "m": t.monetary}
    # values right on the cut points too (the bounds are inclusive); ids longer than drawn ones
    for i, cut in enumerate(data.draw(st.lists(st.sampled_from(t.frequency), max_size=3))):
        if abs(cut) < 2**62 and cut == int(cut):
            r_cut = int(max(-1e9, min(1e9, t.recency[0])))
            rows.append((f"on-the-cut-{i}", r_cut, int(cut), Decimal(0), None, None))
    out, info = score_thresholds(frame(spark, rows), bins=bins, thresholds=t)
    got = collected(out)
    assert info.cut_points == {a: {"": [float(c) for c in v]} for a, v in lists.items()}
    for axis in ("r", "f", "m"):
        pairs = sorted((float(value(r, axis)), got[r[0]][axis]) for r in rows)
        for v, s in pairs:
            assert s == reference_threshold(axis, v, lists[axis], bins), (axis, v)
        scores = [s for _, s in pairs]
        assert scores == sorted(scores, reverse=(axis == "r"))


# ---- scheme validation --------------------------------------------------------------------------

segment_name = st.one_of(
    st.sampled_from(["champions", "Can't Lose Them", 'Drop"; DROP TABLE x; --', "' OR '1'='1"]),
    st.text(min_size=1, max_size=12),
)


def code_text(scores: Sequence[int], style: int) -> Any:
    """A code as a user might write it in YAML: 543, "543" or "5-4-3"."""
    text = "".join(map(str, scores))
    return int(text) if style == 0 else text if style == 1 else "-".join(map(str, scores))


@st.composite
def rule_tables(draw: Any) -> dict[str, Any]:
    """A random rule table in the YAML form of rfm_spark/segments.py.

    A random split of the score grid into boxes, each given to a random segment as a range
    (axes at full width sometimes left out) or as a code list; then random extra codes and
    ranges (doubling codes), dropped codes (leaving gaps) and segments with nothing.
    """
    bins = draw(st.integers(2, 6))
    axes = draw(st.sampled_from([("r", "f"), ("r", "f", "m")]))
    boxes = [[(1, bins)] * len(axes)]
    for _ in range(draw(st.integers(0, 10))):
        i = draw(st.integers(0, len(boxes) - 1))
        box = boxes[i]
        splittable = [k for k, (lo, hi) in enumerate(box) if hi > lo]
        if not splittable:
            continue
        k = draw(st.sampled_from(splittable))
        lo, hi = box[k]
        cut = draw(st.integers(lo, hi - 1))
        left, right = list(box), list(box)
        left[k], right[k] = (lo, cut), (cut + 1, hi)
        boxes[i : i + 1] = [left, right]
    names = draw(st.lists(segment_name, min_size=1, max_size=len(boxes) + 1, unique=True))
    rules: dict[str, dict[str, list[Any]]] = {n: {} for n in names}

    def add_box(name: str, box: Sequence[tuple[int, int]]) -> None:
        if draw(st.booleans()):
            rng = {
                a: [lo, hi]
                for a, (lo, hi) in zip(axes, box, strict=True)
                if (lo, hi) != (1, bins) or draw(st.booleans())
            }
            rules[name].setdefault("ranges", []).append(rng)
        else:
            style = draw(st.integers(0, 2))
            codes = [
                code_text(s, style)
                for s in itertools.product(*(range(lo, hi + 1) for lo, hi in box))
            ]
            rules[name].setdefault("codes", []).extend(codes)

    for box in boxes:
        add_box(draw(st.sampled_from(names)), box)
    for _ in range(draw(st.integers(0, 2))):  # extra boxes: codes listed twice
        box = []
        for _axis in axes:
            lo = draw(st.integers(1, bins))
            box.append((lo, draw(st.integers(lo, bins))))
        add_box(draw(st.sampled_from(names)), box)
    for _ in range(draw(st.integers(0, 2))):  # dropped codes: gaps
        with_codes = [n for n in names if rules[n].get("codes")]
        if with_codes:
            codes = rules[draw(st.sampled_from(with_codes))]["codes"]
            codes.pop(draw(st.integers(0, len(codes) - 1)))
    for name in names:  # a segment given nothing stays in the table, reaching no code
        if not rules[name]:
            rules[name]["codes"] = []
    spec: dict[str, Any] = {"name": "random", "bins": bins, "segments": rules}
    if axes != ("r", "f", "m") or draw(st.booleans()):
        spec["axes"] = list(axes)
    return spec


def brute_force(spec: dict[str, Any]) -> tuple[dict[str, str] | None, list[str]]:
    """Enumerate every code: the mapping when the table is valid, else the message parts the
    error must contain (missing codes, doubled codes with their segments, unreachable ones)."""
    bins = spec["bins"]
    axes = spec.get("axes", ["r", "f", "m"])
    owners: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for name, rule in spec["segments"].items():
        for code in rule.get("codes", []):
            text = str(code)
            owners[tuple(int(p) for p in (text.split("-") if "-" in text else text))].append(name)
        for rng in rule.get("ranges", []):
            spans = [range(rng.get(a, [1, bins])[0], rng.get(a, [1, bins])[1] + 1) for a in axes]
            for scores in itertools.product(*spans):
                owners[scores].append(name)
    every = list(itertools.product(range(1, bins + 1), repeat=len(axes)))
    fmt = "".join  # bins <= 6: codes are plain digits
    missing = [fmt(map(str, c)) for c in every if not owners[c]]
    doubled = {fmt(map(str, c)): owners[c] for c in every if len(owners[c]) > 1}
    alone = {owners[c][0] for c in every if len(owners[c]) == 1}
    unreachable = [n for n in spec["segments"] if n not in alone]
    if not missing and not doubled and not unreachable:
        return {fmt(map(str, c)): owners[c][0] for c in every}, []
    parts = []
    if missing:
        parts.append(f"{len(missing)} code(s) map to no segment: {' '.join(missing)}")
    for code, segs in doubled.items():
        parts.append(f"{code} -> {', '.join(segs)}")
    if unreachable:
        parts.append(f"segment(s) no code reaches alone: {', '.join(unreachable)}")
    return None, parts


@PURE
@given(spec=rule_tables())
@example(  # the widely copied first-match range table: overlapping ranges double-map codes
    spec={
        "bins": 5,
        "axes": ["r", "f"],
        "segments": {
            "champions": {"ranges": [{"r": [4, 5], "f": [4, 5]}]},
            "loyal": {"ranges": [{"r": [2, 5], "f": [3, 5]}]},
            "rest": {"ranges": [{"r": [1, 5], "f": [1, 2]}, {"r": [1, 1], "f": [3, 5]}]},
        },
    }
)
def test_validation_accepts_exactly_the_tables_that_map_every_code_once(spec: dict) -> None:
    expected, parts = brute_force(spec)
    if expected is not None:
        scheme = build_scheme(spec)
        assert dict(scheme.mapping) == expected
        assert scheme.segments == tuple(spec["segments"])
        assert scheme.bins == spec["bins"] and list(scheme.axes) == spec.get(
            "axes", ["r", "f", "m"]
        )
    else:
        with pytest.raises(SchemeError) as err:
            build_scheme(spec)
        for part in parts:
            assert part in str(err.value)


@settings(max_examples=40, deadline=None)
@given(spec=rule_tables())
def test_yaml_files_validate_like_the_dicts(spec: dict) -> None:
    text = yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    # PyYAML writes some names it cannot read back as written (a NEL, U+0085, in a plain scalar
    # loads as a line break): what a YAML file can say is what this property is about
    assume(yaml.safe_load(text) == spec)
    expected, parts = brute_force(spec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scheme.yaml"
        path.write_text(text, encoding="utf-8")
        if expected is not None:
            assert dict(load_scheme(str(path)).mapping) == expected
        else:
            with pytest.raises(SchemeError) as err:
                load_scheme(str(path))
            assert all(p in str(err.value) for p in parts)


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-20, 700)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.sampled_from(["111", "1-1", "r", "f", "m", "codes", "ranges"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["r", "f", "m", "codes", "ranges", "x"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)


@PURE
@given(
    bins=st.one_of(st.integers(1, 11), junk),
    axes=st.one_of(st.just(["r", "f"]), junk),
    segments=st.one_of(
        junk,
        st.dictionaries(
            segment_name,
            st.one_of(junk, st.dictionaries(st.sampled_from(["codes", "ranges"]), junk)),
            max_size=4,
        ),
    ),
)
@example(bins=2, axes=["r", "f"], segments={"a": {"codes": None}})
@example(bins=2, axes=["r", "f"], segments={"a": {"codes": 11}})
@example(bins=2, axes=["r", "f"], segments={"a": {"ranges": [{"r": 1}]}})
@example(bins=2, axes=["r", "f"], segments={"a": {"ranges": [{"r": [1]}]}})
@example(bins=2, axes=["r", "f"], segments={"a": {"ranges": [{"r": ["x", 2]}]}})
@example(bins="many", axes=["r", "f"], segments={"a": {"codes": [11]}})
@example(bins=2, axes=None, segments={"a": {"codes": [11]}})
@example(bins=2, axes=["r", "f"], segments={1: {"codes": [11, 12]}, "1": {"codes": [21, 22]}})
def test_malformed_tables_raise_the_scheme_error(bins: Any, axes: Any, segments: Any) -> None:
    """Whatever a YAML file holds, loading it either gives a valid scheme or a SchemeError
    (a usage error: exit 2 with one line), never a TypeError or ValueError."""
    try:
        scheme = build_scheme({"bins": bins, "axes": axes, "segments": segments})
    except SchemeError:
        return
    n = len(scheme.axes)
    assert sorted(scheme.mapping) == sorted(
        "".join(map(str, c)) if scheme.bins < 10 else "-".join(map(str, c))
        for c in itertools.product(range(1, scheme.bins + 1), repeat=n)
    )
    assert set(scheme.mapping.values()) == set(scheme.segments)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=rule_tables().filter(lambda s: brute_force(s)[0] is not None))
def test_assign_segments_agrees_with_the_brute_force_mapping(
    spark: SparkSession, spec: dict
) -> None:
    scheme: Scheme = build_scheme(spec)
    expected, _ = brute_force(spec)
    assert expected is not None
    bins = scheme.bins
    rows = list(itertools.product(range(1, bins + 1), repeat=3))
    df = spark.createDataFrame(rows, "r_score int, f_score int, m_score int")
    got = assign_segments(df, scheme=scheme).collect()
    assert len(got) == len(rows)
    for r in got:
        scores = (r["r_score"], r["f_score"], r["m_score"])
        assert r["rfm_code"] == "".join(map(str, scores))
        assert r["segment"] == expected["".join(map(str, scores[: len(scheme.axes)]))]


def test_reference_ntile_matches_the_documented_bucket_sizes() -> None:
    # the reference itself: 7 rows in 3 buckets are 3, 2, 2 (Spark puts the extra rows first)
    rows = [(f"c{i}", 0, i, Decimal(i), None, None) for i in range(7)]
    assert Counter(reference_ntile(rows, 3, "f").values()) == {1: 3, 2: 2, 3: 2}
    assert math.isclose(reference_threshold("f", 5.0, [5.0, 6.0], 3), 2)
