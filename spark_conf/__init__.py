"""The Spark-facing surface of wjio (configuration, data source, native execution).

Only this package needs pyspark, and only in the modules that use it: importing the package
itself (e.g. for the ``wj`` entry point) does not load Spark.

``spark_conf.enable(spark)`` runs the session's DataFrame actions natively where the plan
allows (:mod:`spark_conf.accelerate`); ``spark_conf.report(spark)`` says how each ran.
"""

from spark_conf.accelerate import AccelerationError, disable, enable, report

__all__ = ["AccelerationError", "disable", "enable", "report"]
