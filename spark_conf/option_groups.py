"""The option groups of :class:`spark_conf.config.SparkConfig`, one frozen dataclass per
concern: every option declared once, with its Spark key, kind, default and documentation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from spark_conf.options import (
    PROJECT_PREFIX,
    Bool,
    Bytes,
    Duration,
    Group,
    Int,
    MiB,
    Named,
    Option,
    Str,
    endpoint,
    opt,
    s3_prefix,
    timezone,
)
from wjio.options import ScanOptions

S3A = "spark.hadoop.fs.s3a."


@dataclass(frozen=True)
class CoreConfig(Group):
    """Where Spark runs and how big its pieces are."""

    section: ClassVar[str] = "core"
    title: ClassVar[str] = "Spark core and SQL"

    master: str | None = opt("spark.master", Str(), "Cluster manager URL; unset lets "
                              "spark-submit or the cluster decide.")
    app_name: str | None = opt("spark.app.name", Str(), "Application name.")
    driver_host: str | None = opt("spark.driver.host", Str(), "Address executors use to reach "
                                   "the driver.")
    driver_bind_address: str | None = opt("spark.driver.bindAddress", Str(),
                                           "Address the driver listens on.")
    ui_enabled: bool | None = opt("spark.ui.enabled", Bool(), "Run the Spark web UI.")
    console_progress: bool | None = opt("spark.ui.showConsoleProgress", Bool(),
                                         "Draw progress bars on the console.")
    driver_memory: int | None = opt("spark.driver.memory", Bytes(bare_unit=MiB, minimum=MiB),
                                     "Driver JVM heap.")
    executor_memory: int | None = opt("spark.executor.memory",
                                       Bytes(bare_unit=MiB, minimum=MiB), "Executor JVM heap.")
    executor_cores: int | None = opt("spark.executor.cores", Int(1), "Cores per executor.")
    shuffle_partitions: int | None = opt("spark.sql.shuffle.partitions", Int(1),
                                          "Partitions of SQL shuffles (joins, aggregations).")
    default_parallelism: int | None = opt("spark.default.parallelism", Int(1),
                                           "Default partitions of RDD operations.")
    session_timezone: str | None = opt("spark.sql.session.timeZone", Str(check=timezone),
                                        "Session time zone of SQL timestamps.")
    heartbeat_interval: int | None = opt("spark.executor.heartbeatInterval",
                                          Duration(bare_unit=1), "Executor heartbeat interval.")
    network_timeout: int | None = opt("spark.network.timeout", Duration(),
                                       "Default timeout of all network interactions.")


@dataclass(frozen=True)
class S3AConfig(Group):
    """The S3A connector (hadoop-aws) used by Spark for `s3a://` paths."""

    section: ClassVar[str] = "s3a"
    title: ClassVar[str] = "S3A object store"

    endpoint: str | None = opt(S3A + "endpoint", Str(check=endpoint),
                                "S3 endpoint URL (MinIO, a local rig); unset means AWS S3 of "
                                "the region. Its scheme also sets `" + S3A +
                                "connection.ssl.enabled`.")
    region: str | None = opt(S3A + "endpoint.region", Str(), "Signing region of the endpoint.")
    path_style_access: bool | None = opt(S3A + "path.style.access", Bool(),
                                          "Address buckets as endpoint/bucket (MinIO) instead "
                                          "of bucket.endpoint (AWS virtual hosts).")
    credentials: str | None = opt(
        S3A + "aws.credentials.provider",
        Named((
            ("chain", "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"),
            ("env", "software.amazon.awssdk.auth.credentials"
                    ".EnvironmentVariableCredentialsProvider"),
            ("instance", "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider"),
            ("static", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"),
            ("anonymous", "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"))),
        "Credential source, rendered as provider classes: `chain` (AWS SDK default chain: "
        "environment, profile, web identity, container, instance metadata), `env` "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), `instance` (EC2/ECS role), `static` "
        "(the two keys below, rendered in the output), `anonymous` (public buckets).")
    access_key: str | None = opt(S3A + "access.key", Str(), "Access key id; only with "
                                  "credentials=static.", secret=True)
    secret_key: str | None = opt(S3A + "secret.key", Str(), "Secret access key; only with "
                                  "credentials=static.", secret=True)
    connection_maximum: int | None = opt(S3A + "connection.maximum", Int(1),
                                          "HTTP connections per filesystem instance.")
    threads_max: int | None = opt(S3A + "threads.max", Int(1),
                                   "Threads for uploads and other queued operations.")
    multipart_size: int | None = opt(S3A + "multipart.size", Bytes(minimum=5 * MiB),
                                      "Part size of multipart uploads (S3 minimum 5M).")
    upload_buffer: str | None = opt(S3A + "fast.upload.buffer",
                                     Str(choices=("disk", "array", "bytebuffer")),
                                     "Where upload blocks are buffered before they are sent.")
    input_fadvise: str | None = opt(S3A + "experimental.input.fadvise",
                                     Str(choices=("normal", "sequential", "random")),
                                     "Read policy; `random` suits Parquet (footer, then "
                                     "column chunks) by not streaming whole objects.")
    readahead_range: int | None = opt(S3A + "readahead.range", Bytes(),
                                       "Bytes read ahead on a seek before reopening the stream.")



@dataclass(frozen=True)
class ParquetConfig(Group):
    """Spark's own Parquet reader and writer."""

    section: ClassVar[str] = "parquet"
    title: ClassVar[str] = "Parquet"

    filter_pushdown: bool | None = opt("spark.sql.parquet.filterPushdown", Bool(),
                                        "Prune row groups with Parquet statistics.")
    merge_schema: bool | None = opt("spark.sql.parquet.mergeSchema", Bool(),
                                     "Merge the schemas of all files (reads every footer).")
    summary_metadata: str | None = opt("spark.hadoop.parquet.summary.metadata.level",
                                        Str(choices=("ALL", "COMMON_ONLY", "NONE")),
                                        "Summary files written next to Parquet output.")


@dataclass(frozen=True)
class AllocationConfig(Group):
    """Executor allocation, and where shuffle files live when executors go away."""

    section: ClassVar[str] = "allocation"
    title: ClassVar[str] = "Dynamic allocation and shuffle"

    dynamic: bool | None = opt("spark.dynamicAllocation.enabled", Bool(),
                                "Scale executors with the workload.")
    min_executors: int | None = opt("spark.dynamicAllocation.minExecutors", Int(0),
                                     "Lower bound of executors.")
    initial_executors: int | None = opt("spark.dynamicAllocation.initialExecutors", Int(0),
                                         "Executors at start.")
    max_executors: int | None = opt("spark.dynamicAllocation.maxExecutors", Int(1),
                                     "Upper bound of executors.")
    executor_idle_timeout: int | None = opt("spark.dynamicAllocation.executorIdleTimeout",
                                             Duration(), "Idle time before an executor "
                                             "without shuffle data is released.")
    shuffle_service: bool | None = opt("spark.shuffle.service.enabled", Bool(),
                                        "Use an external shuffle service (wjio runs without).")
    shuffle_tracking: bool | None = opt("spark.dynamicAllocation.shuffleTracking.enabled",
                                         Bool(), "Keep executors that hold live shuffle data "
                                         "instead of relying on a shuffle service.")
    shuffle_tracking_timeout: int | None = opt(
        "spark.dynamicAllocation.shuffleTracking.timeout", Duration(bare_unit=1),
        "Release an executor holding shuffle data after this long idle.")


@dataclass(frozen=True)
class DecommissionConfig(Group):
    """Graceful decommissioning, e.g. on a spot-instance interruption notice."""

    section: ClassVar[str] = "decommission"
    title: ClassVar[str] = "Decommissioning (spot instances)"

    enabled: bool | None = opt("spark.decommission.enabled", Bool(),
                                "Decommission executors gracefully instead of killing them.")
    storage: bool | None = opt("spark.storage.decommission.enabled", Bool(),
                                "Migrate blocks off a decommissioning executor.")
    shuffle_blocks: bool | None = opt("spark.storage.decommission.shuffleBlocks.enabled",
                                       Bool(), "Migrate shuffle blocks.")
    rdd_blocks: bool | None = opt("spark.storage.decommission.rddBlocks.enabled", Bool(),
                                   "Migrate cached RDD blocks.")
    fallback_storage_path: str | None = opt(
        "spark.storage.decommission.fallbackStorage.path", Str(check=s3_prefix(("s3a",))),
        "Object-store prefix receiving shuffle blocks no peer executor could take "
        "(`s3a://bucket/prefix/`).")
    fallback_storage_cleanup: bool | None = opt(
        "spark.storage.decommission.fallbackStorage.cleanUp", Bool(),
        "Delete fallback-storage data when its shuffle is freed and at shutdown.")
    force_kill_timeout: int | None = opt("spark.executor.decommission.forceKillTimeout",
                                          Duration(bare_unit=1), "Kill a decommissioning "
                                          "executor after this long (spot notice: 2 min).")
    ignore_fetch_failure: bool | None = opt("spark.stage.ignoreDecommissionFetchFailure",
                                             Bool(), "Do not count fetch failures from "
                                             "decommissioned executors towards stage aborts.")


@dataclass(frozen=True)
class PythonConfig(Group):
    """PySpark's Python workers and the Arrow bridge."""

    section: ClassVar[str] = "python"
    title: ClassVar[str] = "Python workers"

    executable: str | None = opt("spark.pyspark.python", Str(), "Python of the executors' "
                                  "workers (a path valid on the executors).")
    arrow: bool | None = opt("spark.sql.execution.arrow.pyspark.enabled", Bool(),
                              "Use Arrow for toPandas/createDataFrame.")
    arrow_fallback: bool | None = opt("spark.sql.execution.arrow.pyspark.fallback.enabled",
                                       Bool(), "Silently fall back to the slow path when "
                                       "Arrow cannot convert.")
    worker_reuse: bool | None = opt("spark.python.worker.reuse", Bool(),
                                     "Reuse Python workers across tasks.")
    worker_memory: int | None = opt("spark.executor.pyspark.memory",
                                     Bytes(bare_unit=MiB, minimum=MiB),
                                     "Memory limit of the Python workers of one executor.")
    faulthandler: bool | None = opt("spark.python.worker.faulthandler.enabled", Bool(),
                                     "Dump the Python traceback when a worker crashes.")


_SCAN = ScanOptions()


@dataclass(frozen=True)
class WjioConfig(Group):
    """This project's keys, read by the wjio data source and native execution."""

    section: ClassVar[str] = "wjio"
    title: ClassVar[str] = "wjio"

    checkpoint_root: str | None = opt(
        PROJECT_PREFIX + "checkpoint.root", Str(check=s3_prefix(("s3", "s3a"))),
        "Object-store prefix of query checkpoints (`s3://bucket/prefix/`); unset: queries "
        "are not checkpointed.")
    prefetch_concurrency: int = opt(PROJECT_PREFIX + "prefetch.concurrency", Int(1),
                                     "Range requests in flight per scan.", _SCAN.concurrency)
    memory_budget: int = opt(PROJECT_PREFIX + "memoryBudget", Bytes(minimum=MiB),
                              "Fetched plus decoded bytes a scan may hold.", _SCAN.memory_budget)
    native: bool = opt(PROJECT_PREFIX + "native.enabled", Bool(),
                        "Run supported plans on the native Arrow executor.", True)
    fallback: str = opt(PROJECT_PREFIX + "fallback", Str(choices=("spark", "error")),
                         "What a plan the native executor cannot run exactly does: `spark` runs "
                         "it on stock Spark, `error` raises naming the reason.", "spark")

    def scan_options(self) -> ScanOptions:
        """wjio scan options carrying this configuration's prefetch concurrency and budget."""
        return dataclasses.replace(_SCAN, concurrency=self.prefetch_concurrency,
                                   memory_budget=self.memory_budget)


GROUPS: tuple[type[Group], ...] = (CoreConfig, S3AConfig, ParquetConfig, AllocationConfig,
                                     DecommissionConfig, PythonConfig, WjioConfig)
OPTIONS: tuple[Option, ...] = tuple(o for g in GROUPS for o in g.options())
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
DERIVED_KEYS = {S3A + "connection.ssl.enabled": "from the scheme of " + S3A + "endpoint"}
