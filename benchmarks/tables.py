"""Markdown tables for RESULTS.md from benchmarks/results/*.jsonl (the latest run per size).

.venv/bin/python benchmarks/tables.py
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import common

ORDER = ("rfm_spark", "spark_floor", "naive", "duckdb", "pandas")


def _lines(name: str) -> list[dict[str, Any]]:
    path = common.RESULTS / name
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def peers() -> None:
    latest: dict[int, dict[str, Any]] = {}
    for rec in _lines("peers.jsonl"):
        latest[rec["transactions"]] = rec
    for rows, rec in sorted(latest.items()):
        med, mem = rec["median_s"], rec["peak_memory_mb"]
        print(f"\n{rows:,} transactions, {rec['customers']:,} customers ({rec['date']})\n")
        print("| engine | runs (s) | median (s) | vs rfm-spark | peak RSS (MiB) | load1 at start |")
        print("|---|---|---:|---:|---:|---|")
        for e in ORDER:
            if e not in med:
                continue
            runs = rec["runs"][e]
            secs = ", ".join(f"{r['seconds']:.1f}" for r in runs)
            loads = ", ".join(f"{r['load1_start']:.1f}" for r in runs)
            ratio = med[e] / med["rfm_spark"]
            print(f"| {e} | {secs} | {med[e]:.1f} | {ratio:.2f}x | {mem[e]:,.0f} | {loads} |")
        r = rec["ratios"]
        if "rfm_spark_over_spark_floor" in r:
            print(f"\nrfm-spark / Spark floor: {r['rfm_spark_over_spark_floor']:.2f}x")
        for e, c in rec["correctness"].items():
            print(f"- {e} vs rfm-spark: matched={c['matched']} over {c['customers']:,} customers")
        steps = [x.get("steps_s", {}) for x in rec["runs"]["rfm_spark"]]
        if steps and steps[0]:
            print("\nrfm-spark steps (median s):")
            for k in steps[0]:
                print(f"- {k}: {statistics.median(s.get(k, 0) for s in steps):.1f}")


def scoring() -> None:
    for rec in _lines("scoring.jsonl")[-1:]:
        print(f"\nscoring, {rec['customers_generated']:,} customers generated ({rec['date']})\n")
        print(
            "| master | customers scored | ranges | ours runs (s) | ours median | naive runs (s) "
            "| naive median | naive / ours | mismatched rows |"
        )
        print("|---|---:|---|---|---:|---|---:|---:|---:|")
        for m, r in rec["per_master"].items():
            o = ", ".join(f"{x['seconds']:.1f}" for x in r["runs"]["ours"])
            n = ", ".join(f"{x['seconds']:.1f}" for x in r["runs"]["naive"])
            mo, mn = r["median_s"]["ours"], r["median_s"]["naive"]
            print(
                f"| {m} | {r['customers_scored']:,} | {r['ranges']} | {o} | {mo:.1f} | {n} | "
                f"{mn:.1f} | {mn / mo:.2f}x | {r['scores_mismatched_rows']} |"
            )
        print(f"\nspeed-up local[1] -> local[2]: {rec['speedup_local1_to_local2']}")


if __name__ == "__main__":
    peers()
    scoring()
