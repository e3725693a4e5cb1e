"""Churn propensity: the features and labels of a snapshot (:mod:`~rfm_spark.churn.features`)
and the MLlib models that learn one from the other (:mod:`~rfm_spark.churn.models`)."""
