"""spark-submit entry point for every ``rfm-spark`` command, with the command line's own arguments.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 \\
        --py-files dist/rfm_spark.zip jobs/rfm.py segment \\
        --config conf/cluster.example.yaml --snapshot-date 2026-11-23

    spark-submit ... jobs/rfm.py transitions --as-of 2026-11-23 --output s3a://lake/moves.csv
    spark-submit ... jobs/rfm.py campaigns run --campaigns campaigns.yaml --date 2026-11-23

The master and resources come from spark-submit; the session is picked up with getOrCreate.
``jobs/rfm.py --help`` lists the commands, ``jobs/rfm.py COMMAND --help`` their arguments.
"""

from __future__ import annotations

import sys

from rfm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
