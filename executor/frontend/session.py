"""The local Spark session ``wj sql`` plans with (pyspark imported here, lazily).

Spark only parses, resolves and optimizes the query (and runs it when the plan falls back),
so the session is small: ``local[2]``, bound to loopback, no UI, UTC, Arrow transfers on.
A session this process already has is used as it is.
"""

from __future__ import annotations

import os
import sys

PLANNING_CONF = {
    "spark.master": "local[2]",
    "spark.app.name": "wj-sql",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "4",
}


def planning_session(conf: dict[str, str] | None = None):
    """The active SparkSession, or a new one with :data:`PLANNING_CONF` (+ ``conf``); settings
    already given to this process by ``spark-submit`` (e.g. ``spark.master``) win over the
    local defaults."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        from executor.errors import ExecutorError

        raise ExecutorError("wj sql needs pyspark to plan queries: pip install 'wjio[spark]'"
                            ) from err
    active = SparkSession.getActiveSession() or SparkSession._instantiatedSession
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkConf

    given = SparkConf()  # spark-submit / spark-defaults settings (spark.* system properties)
    builder = SparkSession.builder
    for key, value in {**PLANNING_CONF, **(conf or {})}.items():
        if key in PLANNING_CONF and key not in (conf or {}) and given.contains(key):
            continue  # e.g. spark.master from spark-submit: a cluster, not local[2]
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
