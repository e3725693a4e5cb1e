"""The ``train`` command: fit the predictive segments (k-means and kin) on one snapshot.

Its own module because its flags map onto the ``clustering`` config section only and its
report (k scores, id carry-over, cluster profiles) is unlike the segment commands'.
"""

from __future__ import annotations

import argparse

from rfm_spark.cli import render
from rfm_spark.cli.machine import emit
from rfm_spark.cli.runtime import config_from, spark_session
from rfm_spark.config import parse_date


def cmd_train(args: argparse.Namespace) -> int:
    """Train and save the cluster model on ``--snapshot-date``'s features; exit code 0."""
    from rfm_spark.pipeline import run_train
    from rfm_spark.progress import Progress

    snapshot = parse_date(args.snapshot_date, "--snapshot-date")
    config = config_from(
        args,
        {
            "output.table": args.table,
            "clustering.k": args.k,
            "clustering.k_min": args.k_min,
            "clustering.k_max": args.k_max,
            "clustering.algorithm": args.algorithm,
            "clustering.sample_fraction": args.sample_fraction,
            "clustering.seed": args.seed,
        },
    )
    spark = spark_session(config, args)
    run = run_train(spark, config, snapshot, progress=Progress("train", quiet=args.quiet))
    if args.json:
        emit(
            "train",
            run.model.metadata(),
            path=run.model.path,
            reason=run.result.reason,
            profiles=run.profiles,
            profiles_version=run.profiles_version,
        )
        return 0
    print(render.train_report(run))
    return 0
