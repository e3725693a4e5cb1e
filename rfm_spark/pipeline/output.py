"""The ``customer_segments`` rows a run commits: their schema and how scored rows become them.

Segment and backfill runs both end in these rows, so the schema and the conversion live here
once; a backfill keeps each row's own ``snapshot_date`` where a segment run sets one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm_spark.clustering import ClusterModel, assign_clusters
from rfm_spark.config import Config
from rfm_spark.scoring import exact_col
from rfm_spark.segments import Scheme, assign_segments

SNAPSHOT_COLUMN = "snapshot_date"

# The customer_segments table (docs/tables.md), in column order.
OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("recency_days", T.IntegerType()),
        T.StructField("frequency", T.LongType()),
        T.StructField("monetary", T.DecimalType(18, 2)),
        T.StructField("purchase_days", T.LongType()),
        T.StructField("avg_order_value", T.DecimalType(18, 2)),
        T.StructField("first_purchase_date", T.DateType()),
        T.StructField("last_purchase_date", T.DateType()),
        T.StructField("tenure_days", T.IntegerType()),
        T.StructField("r_score", T.IntegerType()),
        T.StructField("f_score", T.IntegerType()),
        T.StructField("m_score", T.IntegerType()),
        T.StructField("rfm_code", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("cluster_id", T.IntegerType()),
        T.StructField("cluster_name", T.StringType()),
        T.StructField("score_group", T.StringType()),
        T.StructField("flag", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)


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
        The rows with cluster columns null (a model, if any, is applied afterwards).
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
    return df.select(
        *[
            (extra[f.name] if f.name in extra else exact_col(f.name)).cast(f.dataType).alias(f.name)
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
) -> DataFrame:
    """Name the segments of scored rows and cluster them: the rows a run commits.

    Args:
        scored: Rows with R, F and M scores.
        config: The run's configuration (its ``scoring.partition_by`` names the groups).
        scheme: The segment scheme that names each score combination.
        snapshot_date: As for :func:`to_output`.
        run_id: The run that made the rows.
        model: The cluster model, or None to leave the cluster columns null.

    Returns:
        Rows in the ``customer_segments`` schema.
    """
    out = to_output(
        assign_segments(scored, scheme=scheme),
        snapshot_date=snapshot_date,
        run_id=run_id,
        partition_by=list(config.scoring.partition_by),
    )
    if model is not None:
        out = assign_clusters(out, model).select(*OUTPUT_SCHEMA.fieldNames())
    return out
