"""Table I/O: versioned Delta Lake tables behind one small interface (see :mod:`rfm_spark.io.delta`)."""
