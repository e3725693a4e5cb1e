"""Customer lifetime value: the BG/NBD and Gamma-Gamma models (:mod:`~rfm_spark.clv.models`)
and the customer summaries they are fitted on (:mod:`~rfm_spark.clv.summaries`)."""
