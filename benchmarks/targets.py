"""Every speed target with its latest recorded figure, its ratio and whether it is met.

Reads only `benchmarks/results/*.jsonl` (the newest record of each kind); a target without a
record says "not measured". Printed by `make bench` after the runs.

    .venv/bin/python benchmarks/targets.py
"""

from __future__ import annotations

import statistics
from typing import Any

from common import latest

Row = tuple[str, str, str, str]  # target, measured, ratio, status


def _status(ok: bool) -> str:
    return "met" if ok else "missed"


def _in_process(run: dict[str, Any]) -> float:
    """A command's own steps, without the JVM start (as the peers' times are taken); the
    steps inside an incremental run's ingest are part of its ingest step."""
    return sum(s for label, s in run.get("steps", {}).items() if not label.startswith("batch "))


def _code(r: dict[str, Any]) -> str:
    return f"{r.get('rfm_spark_code', '?')}, {r.get('date', '?')[:10]}"


def incremental_rows() -> list[Row]:
    rows: list[Row] = []
    for size in ("100m", "10m", "1m"):
        r = latest("incremental.jsonl", lambda r, s=size: r.get("size") == s)
        if r is None:
            continue
        med = r["median_wall_s"]
        ratio = med["full"] / med["incremental"]
        rows.append(
            (
                f"day-after incremental >= 5x faster than full ({size})",
                f"{med['incremental']:.1f} s vs {med['full']:.1f} s ({_code(r)})",
                f"{ratio:.2f}x",
                _status(ratio >= 5) + ("" if r.get("all_equal") else "; SNAPSHOTS DIFFER"),
            )
        )
        floor = latest("peers.jsonl", lambda p, s=size: p.get("size") == s)
        steps = [_in_process(run["incremental"]) for run in r["runs"]]
        if floor is not None and all(steps):
            f, ours = floor["median_s"]["spark_floor"], statistics.median(steps)
            rows.append(
                (
                    f"day-after incremental no slower than the Spark floor ({size})",
                    f"{ours:.1f} s of run steps (JVM start aside) vs floor {f:.1f} s "
                    f"(floor: {_code(floor)})",
                    f"{ours / f:.2f}x",
                    _status(ours <= f),
                )
            )
    return rows or [("day-after incremental vs full", "not measured", "", "not measured")]


def full_rows() -> list[Row]:
    rows: list[Row] = []
    for size in ("10m", "30m", "100m"):
        r = latest("peers.jsonl", lambda r, s=size: r.get("size") == s)
        if r is None:
            rows.append(
                (f"full run vs naive and floor ({size})", "not measured", "", "not measured")
            )
            continue
        m = r["median_s"]
        ours, naive, floor = m["rfm_spark"], m["naive"], m["spark_floor"]
        rows.append(
            (
                f"full run faster than the naive PySpark job ({size})",
                f"{ours:.1f} s vs {naive:.1f} s ({_code(r)})",
                f"{naive / ours:.2f}x",
                _status(ours < naive),
            )
        )
        rows.append(
            (
                f"full run within 3x of the Spark floor ({size})",
                f"{ours:.1f} s vs {floor:.1f} s",
                f"{ours / floor:.2f}x",
                _status(ours <= 3 * floor),
            )
        )
    return rows


def other_rows() -> list[Row]:
    rows: list[Row] = []
    b = latest("backfill.jsonl")
    if b is not None:
        m = b["median_s"]
        best = min(m["backfill"], m.get("backfill_single", m["backfill"]))
        ratio = best / m["one_snapshot"]
        rows.append(
            (
                "14-snapshot backfill within 2x of one snapshot",
                f"{best:.1f} s vs {m['one_snapshot']:.1f} s ({_code(b)})",
                f"{ratio:.2f}x",
                _status(ratio <= 2),
            )
        )
    s = latest("scoring.jsonl", lambda r: bool(r.get("speedup_local1_to_local2")))
    if s is not None:
        speedup = s["speedup_local1_to_local2"]["ours"]
        rows.append(
            (
                "scoring speed-up local[1] -> local[2] >= 1.6x",
                f"{s['median_s']['local[1]']['ours']:.1f} s -> "
                f"{s['median_s']['local[2]']['ours']:.1f} s ({_code(s)})",
                f"{speedup:.2f}x",
                _status(speedup >= 1.6),
            )
        )
    rows.append(_billion_row())
    return rows


def _billion_row() -> Row:
    """The full and the first incremental run of the billion rows, each measured or not."""
    runs = {
        mode: latest(
            "billion.jsonl",
            lambda r, m=mode: r.get("size") == "1b" and r.get("mode", "full") == m,
        )
        for mode in ("full", "incremental")
    }
    measured = "; ".join(f"{g['summary']} ({_code(g)})" for g in runs.values() if g is not None)
    status = []
    for mode, g in runs.items():
        if g is None:
            status.append(f"{mode}: not measured")
        elif "blocked" in g:
            status.append(f"{mode}: blocked (disk)")
        else:
            status.append(f"{mode}: {_status(bool(g.get('completed')))}")
    return (
        "a billion rows, full and incremental, without running out of memory",
        measured or "not measured",
        "",
        ", ".join(status),
    )


def main() -> None:
    import pandas as pd

    rows = [*incremental_rows(), *full_rows(), *other_rows()]
    table = pd.DataFrame(rows, columns=["target", "measured", "ratio", "status"])
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
