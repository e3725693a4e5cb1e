"""Terminal output of the CLI: the tables and multi-line reports the commands print.

Kept apart from the commands so the text users' scripts read line by line (a header, a row of
dashes, then the rows, columns two spaces apart) is defined in one place and can be tested
without Spark. Tables are laid out by pandas; one-line confirmations stay beside the command
that performs the action.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from rfm_spark.schemas import HISTORY_COLUMNS
from rfm_spark.transitions import GONE

if TYPE_CHECKING:
    import datetime as dt

    from rfm_spark.clustering import KScore
    from rfm_spark.history import VacuumResult
    from rfm_spark.pipeline import BackfillResult, Reconciliation, SegmentResult, TrainRunResult

MOVERS_SHOWN = 20  # movers listed on the terminal; --output FILE writes them all


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A plain text table: the header, a row of dashes, then the rows.

    pandas pads the columns; the cells are justified first because ``to_string`` right-aligns
    text and labels read better left-aligned, and each column after the first is one wider
    so columns stay two spaces apart as they always have been.

    Args:
        headers: Column titles.
        rows: Cells of each row, turned into text with ``str``.
        align: ``'l'`` or ``'r'`` per column; all left by default.

    Returns:
        The table without a trailing newline.
    """
    import pandas as pd  # only when a table is printed: keeps ``--help`` quick

    align = align or "l" * len(headers)
    cells = pd.DataFrame([[str(c) for c in r] for r in [headers, *rows]])
    widths = [int(cells[c].str.len().max()) for c in cells.columns]
    dashes = pd.DataFrame([["-" * w for w in widths]], columns=cells.columns)
    cells = pd.concat([cells.iloc[:1], dashes, cells.iloc[1:]], ignore_index=True)
    for c, w, a in zip(cells.columns, widths, align, strict=True):
        cells[c] = cells[c].str.rjust(w) if a == "r" else cells[c].str.ljust(w)
    space: dict[Hashable, int] = {
        c: w + (i > 0) for i, (c, w) in enumerate(zip(cells.columns, widths, strict=True))
    }
    return cells.to_string(index=False, header=False, col_space=space)


def quarantine_lines(recon: Reconciliation, path: str | None, version: int | None) -> list[str]:
    """Where the rejected rows went, when there were any and they were kept."""
    if recon.quarantined_rows and path is not None:
        return [f"quarantined rows: {path} version {version} (reason and original row of each)"]
    return []


def segment_report(result: SegmentResult, idempotency_key: str | None) -> str:
    """The summary of one segment run: segments, score notes, row reconciliation, commit."""
    lines = []
    if result.replayed:
        lines.append(
            f"already committed by an earlier attempt (run {result.run_id}) with idempotency "
            f"key {idempotency_key!r}: nothing written"
        )
    lines.append(
        f"\nSegments as of {result.snapshot_date} (scheme {result.scheme}, scoring {result.scoring.method}):\n"
    )
    lines.append(_segment_table(result))
    collapsed = {a: v for a, v in result.scoring.collapsed.items() if v}
    if collapsed:
        lines.append(f"\nnote: ties left some scores empty (axis -> group -> scores): {collapsed}")
    lines.append("\n" + result.reconciliation.line())
    lines += quarantine_lines(
        result.reconciliation, result.quarantine_path, result.quarantine_version
    )
    lines.append(f"table {result.table_path} version {result.version}, run {result.run_id}")
    return "\n".join(lines)


def _segment_table(result: SegmentResult) -> str:
    """Customers and revenue per segment with their shares, and a total row."""
    rows = [
        (
            s.segment,
            f"{s.customers:,}",
            f"{s.share:.1%}",
            f"{s.revenue:,.2f}",
            f"{s.revenue_share:.1%}",
        )
        for s in result.summary
    ]
    revenue = sum(s.revenue for s in result.summary)
    rows.append(("total", f"{result.customers:,}", "100.0%", f"{revenue:,.2f}", ""))
    headers = ["segment", "customers", "share", "revenue", "revenue share"]
    return format_table(headers, rows, "lrrrr")


def backfill_report(result: BackfillResult, dates: Sequence[dt.date]) -> str:
    """One row per snapshot, the reconciliation of the whole span and the versions written."""
    rows = [
        (str(s.snapshot_date), f"{s.customers:,}", f"{s.reconciliation.used:,}", str(s.version))
        for s in result.snapshots
    ]
    lines = [
        f"\nBackfill {dates[0]} .. {dates[-1]} ({len(dates)} snapshots, run {result.run_id}):\n",
        format_table(["snapshot", "customers", "rows used", "version"], rows, "lrrr"),
    ]
    if result.reconciliation is not None:
        lines.append("\nall snapshots: " + result.reconciliation.line())
        lines += quarantine_lines(
            result.reconciliation, result.quarantine_path, result.quarantine_version
        )
    lines.append(f"\ntable {result.table_path}, versions {', '.join(map(str, result.versions))}")
    return "\n".join(lines)


def history_table(commits: list[dict[str, Any]]) -> str:
    """The commits, newest first, one row each with the run metadata columns."""
    from rfm_spark.history import history_rows

    rows = [[str(r[c]) for c in HISTORY_COLUMNS] for r in history_rows(commits)]
    return format_table(list(HISTORY_COLUMNS), rows, "rlllllllrr"[: len(HISTORY_COLUMNS)])


def history_json(commits: list[dict[str, Any]]) -> list[str]:
    """One JSON object per commit with its full run metadata, for scripts."""
    from rfm_spark.history import run_metadata

    return [
        json.dumps(
            {
                "version": c["version"],
                "timestamp": c["timestamp"].isoformat(),
                "operation": c["operation"],
                "metadata": run_metadata(c),
            },
            sort_keys=True,
        )
        for c in commits
    ]


def movers_lines(shown: Sequence[Any], total: int) -> list[str]:
    """The first movers as ``customer  from -> to``, and how many more there are."""
    lines = [f"  {r['customer_id']}  {r['from_segment']} -> {r['to_segment']}" for r in shown]
    if total > MOVERS_SHOWN:
        lines.append(f"  ... and {total - MOVERS_SHOWN:,} more (use --output FILE for all)")
    return lines


def k_scores_table(scores: Sequence[KScore], chosen: int | None = None) -> str:
    """k, silhouette and cost per candidate k, the chosen k marked with ``*``."""
    rows = [
        [
            s.k,
            "n/a" if math.isnan(s.silhouette) else f"{s.silhouette:.4f}",
            "n/a" if s.cost is None else f"{s.cost:,.2f}",
            "*" if s.k == chosen else "",
        ]
        for s in scores
    ]
    return format_table(["k", "silhouette", "cost", ""], rows, "rrrl")


def train_report(run: TrainRunResult) -> str:
    """The k scores, why this k, how cluster ids carried over, the profiles, the saved model."""
    result, model = run.result, run.model
    lines = [f"\n{k_scores_table(result.scores, model.k)}\n", result.reason]
    if result.matched or result.appeared or result.vanished:
        lines.append(
            f"ids kept from the previous model: {sorted(result.matched) or 'none'}; "
            f"new: {result.appeared or 'none'}; vanished: {result.vanished or 'none'}"
        )
    lines += ["", _profiles_table(run.profiles)]
    lines.append(
        f"\nmodel v{model.version} ({model.algorithm}, k={model.k}, silhouette "
        f"{model.silhouette:.3f}) saved at {model.path}; cluster_profiles version "
        f"{run.profiles_version}"
    )
    return "\n".join(lines)


def _profiles_table(profiles: list[dict[str, Any]]) -> str:
    """Size, revenue share and mean recency, frequency and monetary value of each cluster."""
    rows = [
        (
            str(p["cluster_id"]),
            str(p["cluster_name"]),
            f"{p['customers']:,}",
            f"{(p['revenue_share'] or 0):.1%}",
            f"{(p['mean_recency_days'] or 0):.0f}",
            f"{(p['mean_frequency'] or 0):.1f}",
            f"{(p['mean_monetary'] or 0):,.2f}",
        )
        for p in profiles
    ]
    headers = ["id", "cluster", "customers", "revenue", "recency", "frequency", "monetary"]
    return format_table(headers, rows, "llrrrrr")


def vacuum_report(result: VacuumResult) -> str:
    """Every file deleted (or that would be), then the count and the retention used."""
    verb = "would delete" if result.dry_run else "deleted"
    summary = f"{verb} {len(result.files)} file(s) older than {result.retain_hours} h" + (
        " (dry run: add --apply to delete)" if result.dry_run else ""
    )
    return "\n".join([*result.files, summary])


def matrix_table(matrix_rows: Sequence[Any]) -> tuple[list[str], list[tuple[str, ...]], str]:
    """Headers, text rows and alignment of the matrix for a terminal table
    (``format_table(*matrix_table(rows))``).

    Args:
        matrix_rows: Collected rows of :func:`transition_matrix`.

    Returns:
        ``(headers, rows, align)``: from, to, customers (thousands separators), share
        (percent); the from label is printed once per group.
    """
    rows: list[tuple[str, ...]] = []
    previous = None
    for r in matrix_rows:
        shown = "" if r["from_segment"] == previous else str(r["from_segment"])
        previous = r["from_segment"]
        rows.append((shown, str(r["to_segment"]), f"{r['customers']:,}", f"{r['share']:.1%}"))
    return ["from", "to", "customers", "share"], rows, "llrr"


def crosstab_table(matrix_rows: Sequence[Any]) -> tuple[list[str], list[tuple[str, ...]], str]:
    """The matrix as a from x to grid of customer counts, for :func:`format_table`.

    Args:
        matrix_rows: Collected rows of :func:`transition_matrix` (sorted).

    Returns:
        ``(headers, rows, align)``: one row per from label with a count per to label and a
        total column.
    """
    froms: list[str] = []
    tos: list[str] = []
    cells: dict[tuple[str, str], int] = {}
    for r in matrix_rows:
        f, t = str(r["from_segment"]), str(r["to_segment"])
        if f not in froms:
            froms.append(f)
        if t not in tos:
            tos.append(t)
        cells[f, t] = int(r["customers"])
    tos.sort(key=lambda t: (t == GONE, t))
    rows = [
        (
            f,
            *[f"{cells[f, t]:,}" if (f, t) in cells else "." for t in tos],
            f"{sum(cells.get((f, t), 0) for t in tos):,}",
        )
        for f in froms
    ]
    return ["from \\ to", *tos, "total"], rows, "l" + "r" * (len(tos) + 1)


def _effect_cells(e: Any, pct: bool) -> list[str]:
    """Control, treatment, difference [95% interval] and p-value of one effect."""
    if e is None:
        return ["", "", "", ""]
    fmt = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:,.2f}")
    diff = (lambda v: f"{100 * v:+.2f} pp") if pct else (lambda v: f"{v:+,.2f}")
    interval = f"{diff(e.difference)} [{diff(e.ci_low)}, {diff(e.ci_high)}]"
    return [fmt(e.control), fmt(e.treatment), interval, f"{e.p_value:.3g}"]


def evaluation_table(ev: Any) -> str:
    """A campaign's evaluation: one row per segment (all first), then the split's check."""
    headers = [
        "segment", "treatment", "control", "conv. control", "conv. treatment",
        "uplift [95% CI]", "p", "revenue/customer control", "treatment", "difference [95% CI]",
        "p", "needed per arm",
    ]  # fmt: skip
    rows = [
        [r.segment, f"{r.treatment:,}", f"{r.control:,}", *_effect_cells(r.conversion, True),
         *_effect_cells(r.revenue, False),
         f"{r.needed[0]:,} / {r.needed[1]:,}" if r.needed else ""]
        for r in ev.rows
    ]  # fmt: skip
    lines = [
        f"campaign {ev.campaign}: {len(ev.days)} contact day(s) "
        f"{ev.days[0]}..{ev.days[-1]}, outcomes over {ev.window_days} days after each",
        "",
        format_table(headers, rows),
    ]
    if ev.incomplete:
        lines.append(f"\nleft out (window not over yet): {', '.join(map(str, ev.incomplete))}")
    if ev.srm_p_value is not None:
        verdict = (
            "MISMATCH: check the assignment before reading the results" if ev.mismatch else "OK"
        )
        lines.append(
            f"sample ratio: p = {ev.srm_p_value:.3g} against the planned split ({verdict})"
        )
    return "\n".join(lines)


def attribute_grid(
    rows: Sequence[Any], *, share: bool = False
) -> tuple[list[str], list[tuple[str, ...]], str]:
    """RFM segment x attribute segment counts (or shares of each row), for :func:`format_table`.

    Args:
        rows: Collected rows of :func:`rfm_spark.attributes.crosstab`.
        share: Each cell as a share of its RFM segment instead of a count.

    Returns:
        ``(headers, rows, align)``: segments by size, the largest first, with a total column
        and row.
    """
    import pandas as pd

    frame = pd.DataFrame([(r["segment"], r["attribute"], r["customers"]) for r in rows],
                         columns=["segment", "attribute", "customers"])  # fmt: skip
    grid = frame.pivot_table(
        index="segment", columns="attribute", values="customers", aggfunc="sum", fill_value=0
    )
    grid = grid.loc[grid.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    grid.loc["total"] = grid.sum()
    out = []
    for segment, cells in grid.iterrows():
        total = int(cells.sum())
        shown = [f"{v / total:.1%}" if share else f"{v:,}" for v in cells]
        out.append((str(segment), *shown, f"{total:,}"))
    headers = ["segment \\ attribute", *[str(c) for c in grid.columns], "customers"]
    return headers, out, "l" + "r" * (len(grid.columns) + 1)
