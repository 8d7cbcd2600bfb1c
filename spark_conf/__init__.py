"""The Spark-facing surface of wjio (configuration, data source, native execution).

Only this package needs pyspark, and only in the modules that use it: importing the package
itself (e.g. for the ``wj`` entry point) does not load Spark.
"""
