"""Alias of ``jobs/rfm.py generate``, kept for existing schedules.

    spark-submit --py-files dist/rfm_spark.zip jobs/generate.py \\
        --out s3://bucket/rfm-demo --customers 10000000 --days 730
"""

from __future__ import annotations

import sys

from rfm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
