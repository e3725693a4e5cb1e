"""The tables' schemas and the column names other modules rely on: one home for each contract.

docs/tables.md describes every column; a test compares each schema here with what Spark,
deltalake and DuckDB read back from the written tables.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import types as T

SNAPSHOT_COLUMN = "snapshot_date"
SCORE_COLUMNS = {"r": "r_score", "f": "f_score", "m": "m_score"}

# The customer_segments table, in column order.
OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField(SNAPSHOT_COLUMN, T.DateType()),
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
        T.StructField("attribute_segments", T.MapType(T.StringType(), T.StringType())),
    ]
)

# The quarantine table: one row per unusable input row, with its reason.
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField(SNAPSHOT_COLUMN, T.DateType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("row", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("quarantined_at", T.TimestampType()),
    ]
)

# The customer_day_activity table (incremental runs): one row per customer and day, built from
# each input row once; snapshots read its first four columns.
ACTIVITY_PARTITION = "order_date"
FINGERPRINT = T.StructType(
    [T.StructField("h1", T.LongType()), T.StructField("h2", T.IntegerType())]
)
ACTIVITY_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField(ACTIVITY_PARTITION, T.DateType()),
        T.StructField("orders", T.LongType()),
        T.StructField("net_amount", T.DecimalType(28, 2)),
        T.StructField("lines", T.LongType()),
        T.StructField("purchase_orders", T.ArrayType(T.StringType())),
        T.StructField("anonymous_purchases", T.LongType()),
        T.StructField("fingerprints", T.ArrayType(FINGERPRINT)),
    ]
)

TRANSITIONS_TABLE = "segment_transitions"
TRANSITIONS_PARTITION = "as_of"

# The segment_transitions table, in column order.
TRANSITIONS_SCHEMA = T.StructType(
    [
        T.StructField(TRANSITIONS_PARTITION, T.DateType()),
        T.StructField("earlier_snapshot", T.DateType()),
        T.StructField("from_segment", T.StringType()),
        T.StructField("to_segment", T.StringType()),
        T.StructField("customers", T.LongType()),
        T.StructField("share", T.DoubleType()),
        T.StructField("dimension", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)

AUDIENCES_TABLE = "campaign_audiences"
AUDIENCES_PARTITION = "date"

# The campaign_audiences table: one row per customer a campaign took on a day, in column order.
AUDIENCES_SCHEMA = T.StructType(
    [
        T.StructField(AUDIENCES_PARTITION, T.DateType()),
        T.StructField("campaign", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("arm", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)

CLV_TABLE = "customer_clv"

# The customer_clv table (`rfm-spark clv score`): one row per customer and snapshot.
CLV_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField(SNAPSHOT_COLUMN, T.DateType()),
        T.StructField("frequency", T.LongType()),
        T.StructField("recency", T.DoubleType()),
        T.StructField("T", T.DoubleType()),
        T.StructField("monetary_value", T.DoubleType()),
        T.StructField("p_alive", T.DoubleType()),
        T.StructField("expected_purchases", T.DoubleType()),
        T.StructField("expected_spend", T.DoubleType()),
        T.StructField("clv", T.DoubleType()),
        T.StructField("horizon_days", T.IntegerType()),
        T.StructField("fit_version", T.IntegerType()),
        T.StructField("run_id", T.StringType()),
    ]
)

CHURN_TABLE = "customer_churn"

# The customer_churn table (`rfm-spark churn score`): one row per customer and snapshot.
CHURN_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField(SNAPSHOT_COLUMN, T.DateType()),
        T.StructField("churn_probability", T.DoubleType()),
        T.StructField("churn_risk", T.StringType()),
        T.StructField("model_version", T.IntegerType()),
        T.StructField("run_id", T.StringType()),
    ]
)

RECOMMENDATIONS_TABLE = "customer_recommendations"

# The customer_recommendations table (`rfm-spark recommend`): a customer's top products.
RECOMMENDATIONS_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField(SNAPSHOT_COLUMN, T.DateType()),
        T.StructField("rank", T.IntegerType()),
        T.StructField("product_id", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("category", T.StringType()),
        T.StructField("recommended_category", T.StringType()),
        T.StructField("run_id", T.StringType()),
    ]
)

# `rfm-spark history`: one row per commit, newest first.
HISTORY_COLUMNS = (
    "version",
    "committed_at",
    "operation",
    SNAPSHOT_COLUMN,
    "run_id",
    "scheme",
    "scoring",
    "input_rows",
    "output_rows",
)

MODELS_TABLE = "model_versions"
MODELS_PARTITION = "kind"

# The model_versions table: every saved cluster model, churn model and CLV fit, one row each;
# the newest version of a kind is the one in use. ``path`` is the MLlib folder (null for a fit).
MODELS_SCHEMA = T.StructType(
    [
        T.StructField(MODELS_PARTITION, T.StringType()),
        T.StructField("version", T.IntegerType()),
        T.StructField("path", T.StringType()),
        T.StructField("created_at", T.TimestampType()),
        T.StructField("metadata", T.StringType()),
    ]
)


def cast(column: Column, data_type: T.DataType) -> Column:
    """``column`` cast to ``data_type``, the type given by its SQL text.

    A Spark Connect client sends a type object's strings with an explicit collation, which Delta
    then writes into a table's schema as ``string collate UTF8_BINARY`` (a type delta-rs and
    DuckDB cannot read); the type's text is the plain type on every kind of session.
    """
    return column.cast(data_type.simpleString())
