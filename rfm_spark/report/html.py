"""The report as one self-contained HTML page: charts embedded as PNG data, no network needed."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import jinja2

from rfm_spark.report import figures
from rfm_spark.report.aggregates import OUTLIER_IQRS
from rfm_spark.report.content import (
    SMALL_SHARE,
    ReportData,
    attribute_grids,
    biggest_changes,
    largest_moves,
    prediction_rows,
    segment_table,
    small_but_valuable,
)

_AXIS_FEATURE = {"r": "recency (days)", "f": "frequency (orders)", "m": "spend"}


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _delta(now: float, before: float | None, fmt: str) -> str:
    if before is None:
        return ""
    change = now - before
    pct = f" ({change / abs(before):+.1%})" if before else ""
    return f"{fmt.format(change)}{pct} vs previous"


def _cards(data: ReportData) -> list[dict[str, str]]:
    """The headline figures of the snapshot, each with its change since the previous one."""
    rows = {r["snapshot_date"]: r for r in data.headline.to_dict("records")}
    now, before = rows[data.snapshot], rows.get(data.previous)
    spec = [
        ("customers", "customers", "{:,.0f}", "{:+,.0f}"),
        ("revenue", "revenue (net spend in the window)", "{:,.2f}", "{:+,.2f}"),
        ("mean_monetary", "mean spend per customer", "{:,.2f}", "{:+,.2f}"),
        ("median_recency", "median recency (days)", "{:,.0f}", "{:+,.0f}"),
    ]
    return [
        {
            "key": key,
            "label": label,
            "value": fmt.format(now[key]),
            "delta": _delta(now[key], before[key] if before else None, dfmt),
        }
        for key, label, fmt, dfmt in spec
    ]


def _images(data: ReportData) -> dict[str, Any]:
    now = data.sizes_of(data.snapshot)
    images: dict[str, Any] = {
        "segments": _b64(figures.segment_bars(now, data.scheme_segments)),
        "grid": _b64(figures.rf_heatmap(data.grid, data.bins)),
        "histograms": [
            (
                h.feature,
                _b64(
                    figures.histogram_chart(
                        h.counts, h.edges, title=f"Customers by {h.feature}", xlabel=h.feature,
                        log=h.log,
                    )
                ),
            )
            for h in data.histograms
        ],
    }  # fmt: skip
    if data.clusters is not None and len(data.clusters):
        images["clusters"] = _b64(figures.cluster_chart(data.clusters))
    return images


def _reconciliation(run: dict[str, Any], snapshot: dt.date) -> tuple[list[tuple[str, str]], str]:
    """The input rows of the run that wrote the snapshot, and a note on what they cover."""
    recon = _recon_of(run, snapshot)
    labels = [
        ("input_rows", "input rows read"),
        ("used", "used (in the window)"),
        ("before_window", "before the window"),
        ("after_snapshot", "on or after the snapshot"),
    ]
    rows = [(label, f"{int(recon[k]):,}") for k, label in labels if k in recon]
    rows.append(("quarantined", f"{quarantined_rows(run, snapshot):,}"))
    note = (
        "An incremental run: the counts cover the input rows new to that run."
        if run.get("made_by") == "incremental"
        else "The counts cover the whole input read for this snapshot."
    )
    return rows, note


def _recon_of(run: dict[str, Any], snapshot: dt.date) -> dict[str, Any]:
    """The reconciliation of ``snapshot`` in its commit (a backfill's one commit keys it by date)."""
    recon: dict[str, Any] = run.get("reconciliation") or {}
    return recon.get(snapshot.isoformat(), recon)


def quarantined_rows(run: dict[str, Any], snapshot: dt.date) -> int:
    """The rows the run that wrote ``snapshot`` quarantined (its reconciliation)."""
    return sum(int(v) for v in (_recon_of(run, snapshot).get("quarantined") or {}).values())


def _cut_points(data: ReportData) -> list[tuple[str, str]]:
    """Per score axis, the feature range each score covers."""
    out = []
    for axis in ("r", "f", "m"):
        part = data.score_ranges[data.score_ranges["axis"] == axis].sort_values("score")
        if len(part):
            fmt = "{:,.2f}" if axis == "m" else "{:,.0f}"
            text = "; ".join(
                f"{int(r['score'])}: {fmt.format(r['low'])} to {fmt.format(r['high'])} "
                f"({int(r['customers']):,} customers)"
                for r in part.to_dict("records")
            )
            out.append((f"{axis.upper()}: {_AXIS_FEATURE[axis]}", text))
    return out


def render(data: ReportData, *, days: int) -> str:
    """The report page for ``data`` (``days``: the transitions' look-back)."""
    segments = segment_table(data)
    palette = figures.colours(data.scheme_segments)
    for row in segments:
        row["colour"] = palette.get(row["segment"], figures.OTHER)
    scoring = data.run.get("scoring") or {}
    recon_rows, recon_note = _reconciliation(data.run, data.snapshot)
    outliers = data.outliers.to_dict("records")
    for o in outliers:
        o["segment_name"] = figures.display_name(o["segment"])
    context = {
        "snapshot": data.snapshot.isoformat(),
        "table": data.table,
        "scheme": data.run.get("scheme", ""),
        "made_by": data.run.get("made_by", "full"),
        "run_id": data.run.get("run_id", ""),
        "cards": _cards(data),
        "previous_note": f"Compared with the previous snapshot, {data.previous}."
        if data.previous
        else "No earlier snapshot in the table to compare with.",
        "images": _images(data),
        "segments": segments,
        "change_note": f" since {data.earlier}" if data.earlier else "",
        "earlier": data.earlier,
        "earlier_note": data.earlier_note or "",
        "days": days,
        "transitions_image": _b64(
            figures.transition_heatmap(data.transitions, data.scheme_segments)
        )
        if data.transitions is not None
        else None,
        "moves": largest_moves(data.transitions) if data.transitions is not None else [],
        "clusters": data.clusters.sort_values("cluster_id").to_dict("records")
        if data.clusters is not None
        else [],
        "attribute_grids": attribute_grids(data),
        "predictions": prediction_rows(data),
        "outlier_floor": data.outlier_floor,
        "outlier_count": int(data.outlier_total.get("outliers", 0)),
        "outlier_revenue": float(data.outlier_total.get("revenue") or 0.0),
        "outlier_iqrs": f"{OUTLIER_IQRS:g}",
        "outliers": outliers,
        "valuable": small_but_valuable(segments),
        "small_share": f"{SMALL_SHARE:.0%}",
        "changes": biggest_changes(segments),
        "reconciliation": recon_rows,
        "reconciliation_note": recon_note,
        "quarantine_note": "This run's quarantined rows are kept under another snapshot date "
        "of the quarantine table: a backfill keeps its rows under its last date."
        if quarantined_rows(data.run, data.snapshot) and data.quarantine.empty
        else "",
        "quarantine": data.quarantine.sort_values(
            ["rows", "reason"], ascending=[False, True]
        ).to_dict("records"),
        "scoring_line": f"{scoring.get('method', '?')} scores 1..{scoring.get('bins', data.bins)}"
        + (f" within {', '.join(scoring['partition_by'])}" if scoring.get("partition_by") else ""),
        "cut_points": _cut_points(data),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rfm_spark", "report"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(**context)
