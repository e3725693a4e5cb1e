"""Alias of ``jobs/rfm.py report``, kept for existing schedules.

    spark-submit --py-files dist/rfm_spark.zip jobs/report.py \\
        --config conf/cluster.example.yaml --snapshot-date 2026-11-23 \\
        --out s3a://bucket/reports/report-2026-11-23.html

Only aggregates reach the driver; the driver's Python needs matplotlib and Jinja2 (the
package's dependencies). ``--out`` may be any Hadoop URI the cluster can write.
"""

from __future__ import annotations

import sys

from rfm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
