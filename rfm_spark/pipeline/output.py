"""The ``customer_segments`` rows a run commits: their schema and how scored rows become them.

Segment and backfill runs both end in these rows, so the schema and the conversion live here
once; a backfill keeps each row's own ``snapshot_date`` where a segment run sets one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm_spark.attributes import ATTRIBUTES_COLUMN, AttributeRules, assign_attributes
from rfm_spark.clustering import ClusterModel, assign_clusters
from rfm_spark.config import Config
from rfm_spark.schemas import OUTPUT_SCHEMA, SNAPSHOT_COLUMN, cast
from rfm_spark.segments import Scheme, assign_segments
from rfm_spark.sqltext import exact_col


@dataclass(frozen=True)
class AttributeInput:
    """The attribute rules of a run and the customers table they read (None: not configured)."""

    rules: AttributeRules
    customers: DataFrame | None
    behaviour: DataFrame | None = None  # per customer and snapshot (rfm_spark.behaviour)


def to_output(
    df: DataFrame, *, snapshot_date: dt.date | None, run_id: str, partition_by: Sequence[str]
) -> DataFrame:
    """Rows in the ``customer_segments`` schema, columns cast and in table order.

    Args:
        df: Scored and segmented rows.
        snapshot_date: The snapshot of every row, or None to keep ``df``'s own
            ``snapshot_date`` column (backfills hold many snapshots).
        run_id: The run that made the rows.
        partition_by: The scoring groups, joined into ``score_group`` so that a reader can
            tell which customers were ranked together.

    Returns:
        The rows with the cluster columns and ``attribute_segments`` null (set afterwards when
        there is a model or there are rules).
    """
    group = (
        F.concat_ws(
            "|", *[F.coalesce(exact_col(c).cast("string"), F.lit("(null)")) for c in partition_by]
        )
        if partition_by
        else F.lit(None)
    )
    extra = {
        "snapshot_date": F.col(SNAPSHOT_COLUMN) if snapshot_date is None else F.lit(snapshot_date),
        "cluster_id": F.lit(None),
        "cluster_name": F.lit(None),
        "score_group": group,
        "run_id": F.lit(run_id),
    }
    extra[ATTRIBUTES_COLUMN] = F.lit(None)  # set by segment_rows when there are rules
    return df.select(
        *[
            cast(extra[f.name] if f.name in extra else exact_col(f.name), f.dataType).alias(f.name)
            for f in OUTPUT_SCHEMA.fields
        ]
    )


def segment_rows(
    scored: DataFrame,
    config: Config,
    scheme: Scheme,
    *,
    snapshot_date: dt.date | None,
    run_id: str,
    model: ClusterModel | None,
    attributes: AttributeInput | None = None,
) -> DataFrame:
    """Name the segments of scored rows, add the attribute segments and cluster them: the rows
    a run commits.

    Args:
        scored: Rows with R, F and M scores.
        config: The run's configuration (its ``scoring.partition_by`` names the groups).
        scheme: The segment scheme that names each score combination.
        snapshot_date: As for :func:`to_output`.
        run_id: The run that made the rows.
        model: The cluster model, or None to leave the cluster columns null.
        attributes: The attribute rules and customers, or None to leave them null.

    Returns:
        Rows in the ``customer_segments`` schema.
    """
    out = to_output(
        assign_segments(scored, scheme=scheme),
        snapshot_date=snapshot_date,
        run_id=run_id,
        partition_by=list(config.scoring.partition_by),
    )
    if attributes is not None:
        a = attributes
        named = assign_attributes(out, a.rules, a.customers, a.behaviour)
        out = named.select(
            *[cast(F.col(f.name), f.dataType).alias(f.name) for f in OUTPUT_SCHEMA.fields]
        )
    if model is not None:
        out = assign_clusters(out, model).select(*OUTPUT_SCHEMA.fieldNames())
    return out
