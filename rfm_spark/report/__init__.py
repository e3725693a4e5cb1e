"""The segment report: aggregates (Spark), findings, charts and one self-contained HTML page.

:mod:`rfm_spark.pipeline.report` runs it; ``rfm-spark report`` is its command.
"""
