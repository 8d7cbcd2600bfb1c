"""SparkSessions built from the typed configuration.

``builder_with(config)`` gives users a ``SparkSession.builder`` carrying a configuration;
``local_session()`` is the one in-process ``local[2]`` session that the tests, the benchmarks
and local tools share, so its settings live in one place (profile ``local`` of
:mod:`spark_conf.config`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

from spark_conf.config import ConfigError, SparkConfig


class SessionConflictError(ConfigError):
    """The running session's settings differ from the ones asked for; Spark cannot change
    static settings of a running session, so it would silently ignore them."""


def builder_with(config: SparkConfig, builder=None):
    """``builder`` (default ``SparkSession.builder``) with every key of ``config`` set."""
    if builder is None:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder
    for key, value in config.to_spark_conf().items():
        builder = builder.config(key, value)
    return builder


_lock = threading.Lock()
_session = None


def local_session(config: SparkConfig | None = None, **overrides: str):
    """The process-wide local SparkSession, created on the first call.

    It is built from ``config`` (default: profile ``local``: ``local[2]`` on 127.0.0.1, UI off,
    UTC, Arrow on) with ``overrides`` applied as Spark keys (``local_session(**{"spark.app.name":
    "x"})``; typed keys are checked). Python workers run this interpreter (``PYSPARK_PYTHON``
    defaults to ``sys.executable``) and the warehouse is a fresh temporary directory.

    Later calls return the same session. The keys they ask for explicitly (all of ``config``
    when one is given, and ``overrides``) must equal the running session's, else
    :class:`SessionConflictError`: a call never silently gets other settings than it asked for.
    After creation every requested key is read back from the session, so a key Spark did not
    apply fails here too.
    """
    global _session
    requested = (config or SparkConfig.for_profile("local")).with_settings(overrides)
    master = requested.core.master or ""
    if not master.startswith("local"):
        raise ConfigError(f"local_session: spark.master must be local[N], got {master!r}")
    with _lock:
        if _session is not None:
            explicit = requested.to_spark_conf() if config is not None else {
                k: v for k, v in requested.to_spark_conf().items() if k in overrides}
            _check_applied(_session, explicit)
            return _session
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", requested.core.driver_bind_address or "127.0.0.1")
        builder = builder_with(requested)
        if "spark.sql.warehouse.dir" not in requested.to_spark_conf():
            builder = builder.config("spark.sql.warehouse.dir",
                                     tempfile.mkdtemp(prefix="wj-spark-warehouse-"))
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        _check_applied(spark, requested.to_spark_conf())
        _session = spark
        return spark


def _check_applied(spark, expected: dict[str, str]) -> None:
    for key, value in expected.items():
        have = spark.conf.get(key, None)
        if have != value:
            raise SessionConflictError(
                f"local SparkSession already running with {key}={have!r}; cannot set "
                f"{key}={value!r} (settings are fixed when the session starts)")
