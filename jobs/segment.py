"""Alias of ``jobs/rfm.py segment``, kept for existing schedules.

    spark-submit --py-files dist/rfm_spark.zip jobs/segment.py \\
        --config conf/cluster.example.yaml --snapshot-date 2026-11-23

The master and resources come from spark-submit; the session is picked up with getOrCreate.
"""

from __future__ import annotations

import sys

from rfm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["segment", *sys.argv[1:]]))
