"""Every read and write of tables: the table store (:mod:`rfm_spark.io.store`) and its
backends, the Delta Lake connector (:mod:`rfm_spark.io.spark_delta`) and the delta-rs fallback
(:mod:`rfm_spark.io.deltars`)."""
