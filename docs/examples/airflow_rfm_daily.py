"""A daily rfm-spark pipeline for Apache Airflow: segment, campaigns, report (docs/cluster.md).

Each task is one `spark-submit ... jobs/rfm.py COMMAND` with the command line's own arguments.
The snapshot is the run's logical date; the idempotency key is Airflow's run id plus the task,
the same for every retry of one task of one run, so a retry whose earlier attempt committed
writes nothing, and no two runs or tasks share a key. `--json` leaves one JSON document in the
task's log (and in XCom with `do_xcom_push`) for the tasks after it.

Copy this file into the DAG folder and set the Airflow connection `spark_default` to the
cluster (YARN, Kubernetes, standalone); the files below are where `make package` puts them.
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PACKAGE = "/opt/rfm-spark"  # dist/rfm_spark.zip, jobs/rfm.py and the config, deployed together
CONFIG = f"{PACKAGE}/conf/cluster.yaml"
DELTA = "io.delta:delta-spark_4.2_2.13:4.4.0,org.apache.hadoop:hadoop-aws:3.5.0"
DAY = "{{ ds }}"


def rfm(task_id: str, *arguments: str) -> SparkSubmitOperator:
    """One rfm-spark command as a spark-submit task."""
    return SparkSubmitOperator(
        task_id=task_id,
        application=f"{PACKAGE}/jobs/rfm.py",
        py_files=f"{PACKAGE}/dist/rfm_spark.zip",
        packages=DELTA,
        application_args=[*arguments, "--config", CONFIG],
        retries=2,
        retry_delay=pendulum.duration(minutes=10),
    )


with DAG(
    dag_id="rfm_daily",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one segment run per warehouse at a time (incremental mode)
) as dag:
    segment = rfm(
        "segment",
        "segment",
        "--snapshot-date",
        DAY,
        "--idempotency-key",
        "{{ run_id }}-segment",
        "--json",
    )
    campaigns = rfm(
        "campaigns",
        "campaigns",
        "run",
        "--campaigns",
        f"{PACKAGE}/conf/campaigns.yaml",
        "--date",
        DAY,
        "--out",
        "s3a://analytics-lake/rfm/contact-lists",
        "--json",
    )
    report = rfm(
        "report",
        "report",
        "--snapshot-date",
        DAY,
        "--out",
        "s3a://analytics-lake/rfm/reports/report-" + DAY + ".html",
    )
    segment >> [campaigns, report]
