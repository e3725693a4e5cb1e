"""Every read and write: Delta tables through the connector (:mod:`rfm_spark.io.store`), inputs,
models and file outputs."""
