"""``python -m rfm_spark.cli``: the same as the ``rfm-spark`` console script."""

from __future__ import annotations

from rfm_spark.cli.app import entry

if __name__ == "__main__":
    entry()
