"""Segment rule schemes: load, validate, assign.

A scheme maps every score code to exactly one named segment. Codes are the scores of the
scheme's axes written one after another (``"543"`` is R=5, F=4, M=3); for ``bins`` of 10 the
scores are separated by ``-`` (``"10-4-3"``). A segment lists ``codes`` or score ``ranges``
(inclusive ``[low, high]`` per axis; an axis left out means any score).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from rfm_spark.errors import SchemeError
from rfm_spark.schemas import SCORE_COLUMNS

AXES = ("r", "f", "m")
BUILTIN_SCHEMES = ("rfm11", "rf10")


@dataclass(frozen=True)
class Scheme:
    """A validated segment scheme.

    Attributes:
        name: scheme name, recorded with each run.
        axes: the score axes the codes are made of, ``("r", "f", "m")`` or ``("r", "f")``.
        bins: scores run from 1 to ``bins``.
        mapping: every code of the axes -> its segment name.
        segments: segment names in the order the scheme lists them.
    """

    name: str
    axes: tuple[str, ...]
    bins: int
    mapping: Mapping[str, str]
    segments: tuple[str, ...]
    description: str = ""


def format_code(scores: Sequence[int], bins: int) -> str:
    """Write scores as a code: ``(5, 4, 3) -> "543"``; with bins >= 10, ``"10-4-3"``."""
    return ("-" if bins >= 10 else "").join(str(s) for s in scores)


def code_column(score_columns: Sequence[str], bins: int) -> Column:
    """The code column made of score columns (same format as :func:`format_code`)."""
    return F.concat_ws("-" if bins >= 10 else "", *[F.col(c).cast("string") for c in score_columns])


def all_codes(axes: Sequence[str], bins: int) -> list[str]:
    """Every code of the axes, e.g. the 125 codes of R, F, M over 1..5."""
    return [format_code(s, bins) for s in itertools.product(range(1, bins + 1), repeat=len(axes))]


def _parse_code(raw: Any, axes: Sequence[str], bins: int, segment: str) -> str:
    text = str(raw).strip()
    parts = text.split("-") if "-" in text else list(text)
    try:
        scores = [int(p) for p in parts]
    except ValueError:
        raise SchemeError(f"segment {segment!r}: code {raw!r} is not made of scores") from None
    if len(scores) != len(axes) or not all(1 <= s <= bins for s in scores):
        raise SchemeError(
            f"segment {segment!r}: code {raw!r} must have {len(axes)} scores "
            f"({''.join(axes).upper()}) each in 1..{bins}"
        )
    return format_code(scores, bins)


def _expand_range(rng: Any, axes: Sequence[str], bins: int, segment: str) -> list[str]:
    if not isinstance(rng, Mapping):
        raise SchemeError(f"segment {segment!r}: each range must be a mapping like {{r: [1, 2]}}")
    unknown = set(rng) - set(axes)
    if unknown:
        raise SchemeError(
            f"segment {segment!r}: range names axes {sorted(map(str, unknown))} not in the scheme's axes {list(axes)}"
        )
    spans = []
    for axis in axes:
        bounds = rng.get(axis, [1, bins])
        if (
            not isinstance(bounds, (list, tuple))
            or len(bounds) != 2
            or not all(_is_int(b) for b in bounds)
        ):
            raise SchemeError(
                f"segment {segment!r}: range {axis}: {bounds!r} must be [low, high], two whole "
                f"scores in 1..{bins}"
            )
        low, high = bounds
        if not (1 <= low <= high <= bins):
            raise SchemeError(
                f"segment {segment!r}: range {axis}: [{low}, {high}] must lie in 1..{bins}"
            )
        spans.append(range(low, high + 1))
    return [format_code(s, bins) for s in itertools.product(*spans)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_list(value: Any, what: str) -> list[Any]:
    """A YAML list (``None``, as left by an empty ``codes:``, is an empty list)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise SchemeError(f"{what} must be a list, found {value!r}")
    return list(value)


def build_scheme(spec: Mapping[str, Any], source: str = "scheme") -> Scheme:
    """Validate a scheme spec (the parsed YAML) and build the code -> segment mapping.

    Raises:
        SchemeError: naming the codes that are missing, listed twice, or segments that are
            unreachable.
    """
    allowed = {"name", "description", "axes", "bins", "segments"}
    extra = set(spec) - allowed
    if extra:
        raise SchemeError(f"{source}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    name = str(spec.get("name") or Path(source).stem)
    raw_axes = spec.get("axes", AXES)
    axes = tuple(str(a).lower() for a in raw_axes) if isinstance(raw_axes, (list, tuple)) else ()
    if axes not in (("r", "f", "m"), ("r", "f")):
        raise SchemeError(f"{source}: axes must be [r, f, m] or [r, f], found {raw_axes!r}")
    bins = spec.get("bins", 5)
    if not _is_int(bins) or not 2 <= bins <= 10:
        raise SchemeError(f"{source}: bins must be a whole number 2..10, found {bins!r}")
    segments = spec.get("segments")
    if not isinstance(segments, Mapping) or not segments:
        raise SchemeError(f"{source}: 'segments' must map segment names to codes or ranges")
    names = [str(s) for s in segments]
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise SchemeError(f"{source}: segment name(s) given more than once: {', '.join(twice)}")

    assigned: dict[str, list[str]] = {}
    for segment, rule in segments.items():
        if not isinstance(rule, Mapping) or not set(rule) <= {"codes", "ranges"} or not rule:
            raise SchemeError(
                f"{source}: segment {segment!r} needs 'codes: [...]' and/or 'ranges: [...]'"
            )
        where = f"{source}: segment {segment!r}"
        codes = [
            _parse_code(c, axes, bins, segment)
            for c in _as_list(rule.get("codes"), f"{where}: codes")
        ]
        for rng in _as_list(rule.get("ranges"), f"{where}: ranges"):
            codes.extend(_expand_range(rng, axes, bins, segment))
        for code in codes:
            assigned.setdefault(code, []).append(str(segment))

    expected = all_codes(axes, bins)
    missing = [c for c in expected if c not in assigned]
    doubled = {c: segs for c, segs in assigned.items() if len(segs) > 1}
    per_segment = Counter(seg for segs in assigned.values() if len(segs) == 1 for seg in segs)
    unreachable = [n for n in names if per_segment[n] == 0]
    problems = []
    if missing:
        problems.append(f"{len(missing)} code(s) map to no segment: {' '.join(missing)}")
    if doubled:
        listed = "; ".join(f"{c} -> {', '.join(s)}" for c, s in sorted(doubled.items()))
        problems.append(f"{len(doubled)} code(s) map to more than one segment: {listed}")
    if unreachable:
        problems.append(f"segment(s) no code reaches alone: {', '.join(unreachable)}")
    if problems:
        raise SchemeError(
            f"{source}: scheme {name!r} is invalid: "
            + "; ".join(problems)
            + f". Each of the {len(expected)} codes must map to exactly one segment."
        )
    mapping = {c: segs[0] for c, segs in assigned.items()}
    return Scheme(
        name=name,
        axes=axes,
        bins=bins,
        mapping=mapping,
        segments=tuple(names),
        description=str(spec.get("description", "")),
    )


def load_scheme(name_or_path: str) -> Scheme:
    """Load a built-in scheme by name (``rfm11``, ``rf10``) or a YAML file by path."""
    if name_or_path in BUILTIN_SCHEMES:
        text = resources.files("rfm_spark").joinpath(f"schemes/{name_or_path}.yaml").read_text()
        source = f"built-in scheme {name_or_path}"
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise SchemeError(
                f"scheme {name_or_path!r} is neither a built-in scheme ({', '.join(BUILTIN_SCHEMES)}) "
                "nor an existing YAML file"
            )
        text, source = p.read_text(), str(p)
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemeError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(spec, Mapping):
        raise SchemeError(f"{source} must hold a mapping with 'axes', 'bins' and 'segments'")
    return build_scheme(spec, source)


def assign_segments(df: DataFrame, *, scheme: Scheme) -> DataFrame:
    """Add ``rfm_code`` and ``segment`` from the scores.

    Input columns: ``r_score``, ``f_score``, ``m_score`` (ints 1..bins).
    Output: the input plus ``rfm_code`` (all three scores, e.g. ``"543"``) and ``segment``
    (looked up with the scheme's own axes, through a literal map: no join, no UDF).
    """
    lookup = F.create_map(*[F.lit(x) for kv in sorted(scheme.mapping.items()) for x in kv])
    key = code_column([SCORE_COLUMNS[a] for a in scheme.axes], scheme.bins)
    return df.withColumn(
        "rfm_code", code_column([SCORE_COLUMNS[a] for a in AXES], scheme.bins)
    ).withColumn("segment", F.element_at(lookup, key))


def segment_names(schemes: Iterable[Scheme]) -> list[str]:
    """All segment names of several schemes, first appearance order."""
    seen: dict[str, None] = {}
    for s in schemes:
        for name in s.segments:
            seen.setdefault(name)
    return list(seen)
