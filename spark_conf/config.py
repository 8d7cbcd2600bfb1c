"""The typed configuration of a wjio Spark deployment, rendered as Spark configuration.

One :class:`SparkConfig` (frozen dataclasses, one per concern) renders as ``spark-defaults.conf``
text, as the ``{key: value}`` a ``SparkSession.builder`` takes, and as ``spark-submit --conf``
arguments. Every option is declared once, as a dataclass field whose metadata carries its Spark
key, value kind and documentation; that one table drives construction checks, rendering,
parsing (``--set key=value``, a running session's conf) and ``docs/configuration.md``.

``None`` means "not set": the key is not rendered and Spark's (or Hadoop's) own default applies.
The project's own keys (``spark.wjio.*``) always render, with wjio's defaults.

Credentials are never rendered unless given explicitly (``credentials="static"`` with both
keys): the profiles name credential-provider chains instead, and ``repr`` hides the keys.

This module imports without pyspark.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar
from urllib.parse import urlsplit

from wjio.errors import WjioError
from wjio.options import ScanOptions

KiB = 1024
MiB = 1024 * KiB

PROJECT_PREFIX = "spark.wjio."
PROFILES = ("minio", "aws", "local")


class ConfigError(WjioError, ValueError):
    """A configuration value is malformed, or options are combined in a way that cannot work.

    The message names the Spark key(s) involved and what was expected.
    """


# -- value kinds --------------------------------------------------------------------------


class _Kind:
    """How one option's value is checked, parsed from a Spark string and rendered back."""

    name: ClassVar[str]

    def coerce(self, key: str, value: Any) -> Any:
        """The canonical Python value for ``value`` (a Python value or a Spark string)."""
        raise NotImplementedError

    def render(self, key: str, value: Any) -> str:
        return str(value)


class _Bool(_Kind):
    name = "boolean"

    def coerce(self, key, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ConfigError(f"{key}: expected true or false, got {value!r}")

    def render(self, key, value):
        return "true" if value else "false"


@dataclass(frozen=True)
class _Int(_Kind):
    minimum: int = 0
    name: ClassVar[str] = "integer"

    def coerce(self, key, value):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if value < self.minimum:
            raise ConfigError(f"{key}: expected an integer >= {self.minimum}, got {value}")
        return value


@dataclass(frozen=True)
class _Str(_Kind):
    choices: tuple[str, ...] = ()
    check: Callable[[str, str], str] | None = None
    """Validates (and may normalise) the string; raises ConfigError naming the key."""
    name: ClassVar[str] = "string"

    def coerce(self, key, value):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
        value = value.strip()
        if self.choices and value not in self.choices:
            raise ConfigError(f"{key}: expected one of {', '.join(self.choices)}; got {value!r}")
        return self.check(key, value) if self.check else value


@dataclass(frozen=True)
class _Named(_Kind):
    """One of a few names, each rendered as a Spark value (e.g. a class name); parses both."""

    values: tuple[tuple[str, str], ...] = ()
    name: ClassVar[str] = "string"

    def coerce(self, key, value):
        for short, rendered in self.values:
            if value in (short, rendered):
                return short
        names = ", ".join(short for short, _ in self.values)
        raise ConfigError(f"{key}: expected one of {names}; got {value!r}")

    def render(self, key, value):
        return dict(self.values)[value]


_BYTE_UNITS = {"b": 1, "k": KiB, "kb": KiB, "m": MiB, "mb": MiB, "g": 1024 * MiB,
               "gb": 1024 * MiB, "t": 1024**2 * MiB, "tb": 1024**2 * MiB}
_NUMBER_UNIT = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Bytes(_Kind):
    """A size in bytes; Spark/Hadoop strings like ``512m`` or ``64M``. Stored as an int.

    ``bare_unit`` is what a number without a suffix means for this key in Spark (``spark.driver
    .memory=2048`` is MiB). Rendering always uses the largest exact binary unit; Hadoop keys
    (``spark.hadoop.*``) get Hadoop's upper-case suffixes and bare bytes (no ``b`` suffix).
    """

    bare_unit: int = 1
    minimum: int = 1
    name: ClassVar[str] = "size"

    def coerce(self, key, value):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a size like 512m, got {value!r}")
        if isinstance(value, str):
            m = _NUMBER_UNIT.match(value)
            unit = m and (_BYTE_UNITS.get(m.group(2).lower()) if m.group(2) else self.bare_unit)
            if not unit:
                raise ConfigError(f"{key}: expected a size like 512m or 64M, got {value!r}")
            value = int(m.group(1)) * unit
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected a size like 512m, got {value!r}")
        if value < self.minimum:
            raise ConfigError(f"{key}: expected at least {_size_text(self.minimum)}, "
                              f"got {_size_text(value)}")
        return value

    def render(self, key, value):
        hadoop = key.startswith("spark.hadoop.")
        for suffix, unit in (("t", 1024**2 * MiB), ("g", 1024 * MiB), ("m", MiB), ("k", KiB)):
            if value % unit == 0:
                return f"{value // unit}{suffix.upper() if hadoop else suffix}"
        return str(value) if hadoop else f"{value}b"


_TIME_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000,
               "d": 86_400_000}


@dataclass(frozen=True)
class _Duration(_Kind):
    """A duration; Spark time strings like ``120s`` or ``30min``. Stored as milliseconds.

    ``bare_unit`` (ms) is what a number without a suffix means for this key in Spark.
    """

    bare_unit: int = 1000
    name: ClassVar[str] = "duration"

    def coerce(self, key, value):
        if isinstance(value, str):
            m = _NUMBER_UNIT.match(value)
            unit = m and (_TIME_UNITS.get(m.group(2).lower()) if m.group(2) else self.bare_unit)
            if not unit:
                raise ConfigError(f"{key}: expected a duration like 120s or 30min, "
                                  f"got {value!r}")
            value = int(m.group(1)) * unit
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key}: expected a positive duration like 120s, got {value!r}")
        return value

    def render(self, key, value):
        for suffix, unit in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
            if value % unit == 0:
                return f"{value // unit}{suffix}"
        return f"{value}ms"


def _size_text(n: int) -> str:
    return _Bytes().render("", n)


# -- value checks -------------------------------------------------------------------------


def _endpoint(key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: expected an http:// or https:// URL, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{key}: expected scheme://host[:port] without a path, got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _s3_prefix(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    """A check for ``scheme://bucket/prefix/`` URIs; normalised to end with '/'."""

    def check(key: str, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        bucket = rest.partition("/")[0]
        if not sep or scheme not in schemes:
            want = " or ".join(f"{s}://bucket/prefix/" for s in schemes)
            raise ConfigError(f"{key}: expected {want}, got {value!r}")
        if not _BUCKET.match(bucket):
            raise ConfigError(f"{key}: {bucket!r} in {value!r} is not an S3 bucket name "
                              f"(3-63 lower-case letters, digits, dots and hyphens)")
        if ".." in rest.split("/"):
            raise ConfigError(f"{key}: '..' is not allowed in an object-store prefix: {value!r}")
        return value if value.endswith("/") else value + "/"

    return check


def _timezone(key: str, value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if re.fullmatch(r"[+-]\d{2}:\d{2}", value):
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: expected a region-based zone id like UTC or "
                          f"Europe/Berlin, or an offset like +01:00; got {value!r}") from None
    return value


# -- the option table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option: its field, Spark key, kind and documentation."""

    group: str
    name: str
    key: str
    kind: _Kind
    doc: str
    secret: bool = False

    @property
    def path(self) -> str:
        return f"{self.group}.{self.name}"


def _opt(key: str, kind: _Kind, doc: str, default: Any = None, *, secret: bool = False):
    return field(default=default, repr=not secret,
                 metadata={"key": key, "kind": kind, "doc": doc, "secret": secret})


class _Group:
    """Base of the option groups: coerces every field through its kind on construction."""

    section: ClassVar[str]
    title: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, f.metadata["kind"].coerce(f.metadata["key"],
                                                                          value))

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        return tuple(Option(cls.section, f.name, f.metadata["key"], f.metadata["kind"],
                            f.metadata["doc"], f.metadata["secret"]) for f in fields(cls))


_H = "spark.hadoop.fs.s3a."


@dataclass(frozen=True)
class CoreConfig(_Group):
    """Where Spark runs and how big its pieces are."""

    section: ClassVar[str] = "core"
    title: ClassVar[str] = "Spark core and SQL"

    master: str | None = _opt("spark.master", _Str(), "Cluster manager URL; unset lets "
                              "spark-submit or the cluster decide.")
    app_name: str | None = _opt("spark.app.name", _Str(), "Application name.")
    driver_host: str | None = _opt("spark.driver.host", _Str(), "Address executors use to reach "
                                   "the driver.")
    driver_bind_address: str | None = _opt("spark.driver.bindAddress", _Str(),
                                           "Address the driver listens on.")
    ui_enabled: bool | None = _opt("spark.ui.enabled", _Bool(), "Run the Spark web UI.")
    console_progress: bool | None = _opt("spark.ui.showConsoleProgress", _Bool(),
                                         "Draw progress bars on the console.")
    driver_memory: int | None = _opt("spark.driver.memory", _Bytes(bare_unit=MiB, minimum=MiB),
                                     "Driver JVM heap.")
    executor_memory: int | None = _opt("spark.executor.memory",
                                       _Bytes(bare_unit=MiB, minimum=MiB), "Executor JVM heap.")
    executor_cores: int | None = _opt("spark.executor.cores", _Int(1), "Cores per executor.")
    shuffle_partitions: int | None = _opt("spark.sql.shuffle.partitions", _Int(1),
                                          "Partitions of SQL shuffles (joins, aggregations).")
    default_parallelism: int | None = _opt("spark.default.parallelism", _Int(1),
                                           "Default partitions of RDD operations.")
    session_timezone: str | None = _opt("spark.sql.session.timeZone", _Str(check=_timezone),
                                        "Session time zone of SQL timestamps.")
    heartbeat_interval: int | None = _opt("spark.executor.heartbeatInterval",
                                          _Duration(bare_unit=1), "Executor heartbeat interval.")
    network_timeout: int | None = _opt("spark.network.timeout", _Duration(),
                                       "Default timeout of all network interactions.")


@dataclass(frozen=True)
class S3AConfig(_Group):
    """The S3A connector (hadoop-aws) used by Spark for `s3a://` paths."""

    section: ClassVar[str] = "s3a"
    title: ClassVar[str] = "S3A object store"

    endpoint: str | None = _opt(_H + "endpoint", _Str(check=_endpoint),
                                "S3 endpoint URL (MinIO, a local rig); unset means AWS S3 of "
                                "the region. Its scheme also sets `" + _H +
                                "connection.ssl.enabled`.")
    region: str | None = _opt(_H + "endpoint.region", _Str(), "Signing region of the endpoint.")
    path_style_access: bool | None = _opt(_H + "path.style.access", _Bool(),
                                          "Address buckets as endpoint/bucket (MinIO) instead "
                                          "of bucket.endpoint (AWS virtual hosts).")
    credentials: str | None = _opt(
        _H + "aws.credentials.provider",
        _Named((
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
    access_key: str | None = _opt(_H + "access.key", _Str(), "Access key id; only with "
                                  "credentials=static.", secret=True)
    secret_key: str | None = _opt(_H + "secret.key", _Str(), "Secret access key; only with "
                                  "credentials=static.", secret=True)
    connection_maximum: int | None = _opt(_H + "connection.maximum", _Int(1),
                                          "HTTP connections per filesystem instance.")
    threads_max: int | None = _opt(_H + "threads.max", _Int(1),
                                   "Threads for uploads and other queued operations.")
    multipart_size: int | None = _opt(_H + "multipart.size", _Bytes(minimum=5 * MiB),
                                      "Part size of multipart uploads (S3 minimum 5M).")
    upload_buffer: str | None = _opt(_H + "fast.upload.buffer",
                                     _Str(choices=("disk", "array", "bytebuffer")),
                                     "Where upload blocks are buffered before they are sent.")
    input_fadvise: str | None = _opt(_H + "experimental.input.fadvise",
                                     _Str(choices=("normal", "sequential", "random")),
                                     "Read policy; `random` suits Parquet (footer, then "
                                     "column chunks) by not streaming whole objects.")
    readahead_range: int | None = _opt(_H + "readahead.range", _Bytes(),
                                       "Bytes read ahead on a seek before reopening the stream.")



@dataclass(frozen=True)
class ParquetConfig(_Group):
    """Spark's own Parquet reader and writer."""

    section: ClassVar[str] = "parquet"
    title: ClassVar[str] = "Parquet"

    filter_pushdown: bool | None = _opt("spark.sql.parquet.filterPushdown", _Bool(),
                                        "Prune row groups with Parquet statistics.")
    merge_schema: bool | None = _opt("spark.sql.parquet.mergeSchema", _Bool(),
                                     "Merge the schemas of all files (reads every footer).")
    summary_metadata: str | None = _opt("spark.hadoop.parquet.summary.metadata.level",
                                        _Str(choices=("ALL", "COMMON_ONLY", "NONE")),
                                        "Summary files written next to Parquet output.")


@dataclass(frozen=True)
class AllocationConfig(_Group):
    """Executor allocation, and where shuffle files live when executors go away."""

    section: ClassVar[str] = "allocation"
    title: ClassVar[str] = "Dynamic allocation and shuffle"

    dynamic: bool | None = _opt("spark.dynamicAllocation.enabled", _Bool(),
                                "Scale executors with the workload.")
    min_executors: int | None = _opt("spark.dynamicAllocation.minExecutors", _Int(0),
                                     "Lower bound of executors.")
    initial_executors: int | None = _opt("spark.dynamicAllocation.initialExecutors", _Int(0),
                                         "Executors at start.")
    max_executors: int | None = _opt("spark.dynamicAllocation.maxExecutors", _Int(1),
                                     "Upper bound of executors.")
    executor_idle_timeout: int | None = _opt("spark.dynamicAllocation.executorIdleTimeout",
                                             _Duration(), "Idle time before an executor "
                                             "without shuffle data is released.")
    shuffle_service: bool | None = _opt("spark.shuffle.service.enabled", _Bool(),
                                        "Use an external shuffle service (wjio runs without).")
    shuffle_tracking: bool | None = _opt("spark.dynamicAllocation.shuffleTracking.enabled",
                                         _Bool(), "Keep executors that hold live shuffle data "
                                         "instead of relying on a shuffle service.")
    shuffle_tracking_timeout: int | None = _opt(
        "spark.dynamicAllocation.shuffleTracking.timeout", _Duration(bare_unit=1),
        "Release an executor holding shuffle data after this long idle.")


@dataclass(frozen=True)
class DecommissionConfig(_Group):
    """Graceful decommissioning, e.g. on a spot-instance interruption notice."""

    section: ClassVar[str] = "decommission"
    title: ClassVar[str] = "Decommissioning (spot instances)"

    enabled: bool | None = _opt("spark.decommission.enabled", _Bool(),
                                "Decommission executors gracefully instead of killing them.")
    storage: bool | None = _opt("spark.storage.decommission.enabled", _Bool(),
                                "Migrate blocks off a decommissioning executor.")
    shuffle_blocks: bool | None = _opt("spark.storage.decommission.shuffleBlocks.enabled",
                                       _Bool(), "Migrate shuffle blocks.")
    rdd_blocks: bool | None = _opt("spark.storage.decommission.rddBlocks.enabled", _Bool(),
                                   "Migrate cached RDD blocks.")
    fallback_storage_path: str | None = _opt(
        "spark.storage.decommission.fallbackStorage.path", _Str(check=_s3_prefix(("s3a",))),
        "Object-store prefix receiving shuffle blocks no peer executor could take "
        "(`s3a://bucket/prefix/`).")
    fallback_storage_cleanup: bool | None = _opt(
        "spark.storage.decommission.fallbackStorage.cleanUp", _Bool(),
        "Delete fallback-storage data when its shuffle is freed and at shutdown.")
    force_kill_timeout: int | None = _opt("spark.executor.decommission.forceKillTimeout",
                                          _Duration(bare_unit=1), "Kill a decommissioning "
                                          "executor after this long (spot notice: 2 min).")
    ignore_fetch_failure: bool | None = _opt("spark.stage.ignoreDecommissionFetchFailure",
                                             _Bool(), "Do not count fetch failures from "
                                             "decommissioned executors towards stage aborts.")


@dataclass(frozen=True)
class PythonConfig(_Group):
    """PySpark's Python workers and the Arrow bridge."""

    section: ClassVar[str] = "python"
    title: ClassVar[str] = "Python workers"

    executable: str | None = _opt("spark.pyspark.python", _Str(), "Python of the executors' "
                                  "workers (a path valid on the executors).")
    arrow: bool | None = _opt("spark.sql.execution.arrow.pyspark.enabled", _Bool(),
                              "Use Arrow for toPandas/createDataFrame.")
    arrow_fallback: bool | None = _opt("spark.sql.execution.arrow.pyspark.fallback.enabled",
                                       _Bool(), "Silently fall back to the slow path when "
                                       "Arrow cannot convert.")
    worker_reuse: bool | None = _opt("spark.python.worker.reuse", _Bool(),
                                     "Reuse Python workers across tasks.")
    worker_memory: int | None = _opt("spark.executor.pyspark.memory",
                                     _Bytes(bare_unit=MiB, minimum=MiB),
                                     "Memory limit of the Python workers of one executor.")
    faulthandler: bool | None = _opt("spark.python.worker.faulthandler.enabled", _Bool(),
                                     "Dump the Python traceback when a worker crashes.")


_SCAN = ScanOptions()


@dataclass(frozen=True)
class WjioConfig(_Group):
    """This project's keys, read by the wjio data source and native execution."""

    section: ClassVar[str] = "wjio"
    title: ClassVar[str] = "wjio"

    checkpoint_root: str | None = _opt(
        PROJECT_PREFIX + "checkpoint.root", _Str(check=_s3_prefix(("s3", "s3a"))),
        "Object-store prefix of query checkpoints (`s3://bucket/prefix/`); unset: queries "
        "are not checkpointed.")
    prefetch_concurrency: int = _opt(PROJECT_PREFIX + "prefetch.concurrency", _Int(1),
                                     "Range requests in flight per scan.", _SCAN.concurrency)
    memory_budget: int = _opt(PROJECT_PREFIX + "memoryBudget", _Bytes(minimum=MiB),
                              "Fetched plus decoded bytes a scan may hold.", _SCAN.memory_budget)
    native: bool = _opt(PROJECT_PREFIX + "native.enabled", _Bool(),
                        "Run supported plans on the native Arrow executor.", True)
    fallback: str = _opt(PROJECT_PREFIX + "fallback", _Str(choices=("spark", "error")),
                         "What a plan the native executor cannot run exactly does: `spark` runs "
                         "it on stock Spark, `error` raises naming the reason.", "spark")

    def scan_options(self) -> ScanOptions:
        """wjio scan options carrying this configuration's prefetch concurrency and budget."""
        return dataclasses.replace(_SCAN, concurrency=self.prefetch_concurrency,
                                   memory_budget=self.memory_budget)


_GROUPS: tuple[type[_Group], ...] = (CoreConfig, S3AConfig, ParquetConfig, AllocationConfig,
                                     DecommissionConfig, PythonConfig, WjioConfig)
OPTIONS: tuple[Option, ...] = tuple(o for g in _GROUPS for o in g.options())
_BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
_DERIVED_KEYS = {_H + "connection.ssl.enabled": "from the scheme of " + _H + "endpoint"}


# -- rules ----------------------------------------------------------------------------------


_RULES: list[Callable[[SparkConfig], None]] = []


def _rule(fn: Callable[[SparkConfig], None]) -> Callable[[SparkConfig], None]:
    """Register a combination rule; its docstring is its entry in the configuration reference."""
    _RULES.append(fn)
    return fn


def _k(group: type[_Group], name: str) -> str:
    return next(o.key for o in group.options() if o.name == name)


@_rule
def _static_credentials(c: SparkConfig) -> None:
    """Access and secret key are given together, and only with `credentials=static`; static
    credentials need both."""
    s = c.s3a
    given = (s.access_key is not None, s.secret_key is not None)
    if any(given) and s.credentials != "static":
        raise ConfigError(f"{_k(S3AConfig, 'access_key')}/{_k(S3AConfig, 'secret_key')} are only "
                          f"used with credentials=static (got credentials={s.credentials}); "
                          f"prefer a provider chain and leave the keys out of the config")
    if s.credentials == "static" and not all(given):
        raise ConfigError(f"credentials=static needs both {_k(S3AConfig, 'access_key')} and "
                          f"{_k(S3AConfig, 'secret_key')}")


@_rule
def _connections(c: SparkConfig) -> None:
    """S3A connections outnumber S3A threads (Hadoop: otherwise threads block on the pool)."""
    s = c.s3a
    if s.connection_maximum is not None and s.threads_max is not None \
            and s.connection_maximum <= s.threads_max:
        raise ConfigError(f"{_k(S3AConfig, 'connection_maximum')}={s.connection_maximum} must be "
                          f"greater than {_k(S3AConfig, 'threads_max')}={s.threads_max}")


@_rule
def _profile_minio(c: SparkConfig) -> None:
    """Profile `minio` needs an endpoint and path-style access (MinIO serves buckets as
    endpoint/bucket unless its virtual-host domain is configured)."""
    if c.profile != "minio":
        return
    if c.s3a.endpoint is None:
        raise ConfigError(f"profile minio needs {_k(S3AConfig, 'endpoint')} (--endpoint URL, "
                          f"AWS_ENDPOINT_URL, or a running `wj rig up`)")
    if c.s3a.path_style_access is not True:
        raise ConfigError(f"profile minio needs {_k(S3AConfig, 'path_style_access')}=true")


@_rule
def _profile_aws(c: SparkConfig) -> None:
    """Profile `aws` accepts only an https endpoint on amazonaws.com (a VPC or regional
    endpoint); any other endpoint is an S3-compatible store: use profile `minio`."""
    if c.profile != "aws" or c.s3a.endpoint is None:
        return
    parts = urlsplit(c.s3a.endpoint)
    host = parts.hostname or ""
    if parts.scheme != "https" or not (host == "amazonaws.com" or host.endswith(".amazonaws.com")
                                       or host.endswith(".amazonaws.com.cn")):
        raise ConfigError(f"profile aws: {_k(S3AConfig, 'endpoint')}={c.s3a.endpoint!r} is not an "
                          f"https endpoint on amazonaws.com; use profile minio for other "
                          f"S3-compatible stores")


@_rule
def _profile_local(c: SparkConfig) -> None:
    """Profile `local` runs in-process: `spark.master` is `local[...]`."""
    if c.profile == "local" and not (c.core.master or "").startswith("local"):
        raise ConfigError(f"profile local needs spark.master=local[N], got {c.core.master!r}")


@_rule
def _executor_bounds(c: SparkConfig) -> None:
    """minExecutors <= initialExecutors <= maxExecutors (where set)."""
    a = c.allocation
    bounds = [(n, getattr(a, n)) for n in ("min_executors", "initial_executors", "max_executors")
              if getattr(a, n) is not None]
    for (n1, v1), (n2, v2) in itertools.pairwise(bounds):
        if v1 > v2:
            raise ConfigError(f"{_k(AllocationConfig, n1)}={v1} exceeds "
                              f"{_k(AllocationConfig, n2)}={v2}")


@_rule
def _shuffle_without_service(c: SparkConfig) -> None:
    """Dynamic allocation without an external shuffle service needs shuffle tracking (else
    executors holding shuffle output are released and their stages recomputed); shuffle
    tracking with the shuffle service on does nothing and is refused as contradictory."""
    a = c.allocation
    if a.dynamic and not a.shuffle_service and not a.shuffle_tracking:
        raise ConfigError(f"{_k(AllocationConfig, 'dynamic')}=true without "
                          f"{_k(AllocationConfig, 'shuffle_service')}=true needs "
                          f"{_k(AllocationConfig, 'shuffle_tracking')}=true")
    if a.shuffle_service and a.shuffle_tracking:
        raise ConfigError(f"{_k(AllocationConfig, 'shuffle_tracking')}=true has no effect with "
                          f"{_k(AllocationConfig, 'shuffle_service')}=true; set one of them")


@_rule
def _decommission_chain(c: SparkConfig) -> None:
    """Block migration needs storage decommissioning, which needs decommissioning; fallback
    storage needs shuffle-block migration; its cleanUp needs its path."""
    d = c.decommission
    chain = [("storage", "enabled"), ("shuffle_blocks", "storage"), ("rdd_blocks", "storage"),
             ("fallback_storage_path", "shuffle_blocks"),
             ("fallback_storage_cleanup", "fallback_storage_path")]
    for name, needs in chain:
        if getattr(d, name) not in (None, False) and not getattr(d, needs):
            want = "set" if needs == "fallback_storage_path" else "true"
            raise ConfigError(f"{_k(DecommissionConfig, name)} needs "
                              f"{_k(DecommissionConfig, needs)}={want}")


@_rule
def _fallback_apart_from_checkpoints(c: SparkConfig) -> None:
    """Fallback storage and the checkpoint root do not overlap (Spark's fallback cleanUp would
    delete checkpoints; checkpoint gc would delete migrated shuffle blocks)."""
    fb, root = c.decommission.fallback_storage_path, c.wjio.checkpoint_root
    if fb is None or root is None:
        return
    a, b = fb.partition("://")[2], root.partition("://")[2]
    if a.startswith(b) or b.startswith(a):
        raise ConfigError(f"{_k(DecommissionConfig, 'fallback_storage_path')}={fb!r} and "
                          f"{_k(WjioConfig, 'checkpoint_root')}={root!r} overlap; give them "
                          f"separate prefixes")


@_rule
def _heartbeat(c: SparkConfig) -> None:
    """The executor heartbeat interval is shorter than the network timeout (Spark refuses to
    start otherwise)."""
    hb, nt = c.core.heartbeat_interval, c.core.network_timeout
    if hb is not None and hb >= (nt if nt is not None else 120_000):
        raise ConfigError(f"{_k(CoreConfig, 'heartbeat_interval')} must be less than "
                          f"{_k(CoreConfig, 'network_timeout')} (default 120s)")


@_rule
def _fallback_policy(c: SparkConfig) -> None:
    """`spark.wjio.fallback=error` needs native execution on (with it off every plan would
    fail)."""
    if c.wjio.fallback == "error" and not c.wjio.native:
        raise ConfigError(f"{_k(WjioConfig, 'fallback')}=error needs "
                          f"{_k(WjioConfig, 'native')}=true")


# -- the configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class SparkConfig:
    """A whole deployment's configuration; validated on construction (see the rules)."""

    core: CoreConfig = field(default_factory=CoreConfig)
    s3a: S3AConfig = field(default_factory=S3AConfig)
    parquet: ParquetConfig = field(default_factory=ParquetConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    decommission: DecommissionConfig = field(default_factory=DecommissionConfig)
    python: PythonConfig = field(default_factory=PythonConfig)
    wjio: WjioConfig = field(default_factory=WjioConfig)
    extra: tuple[tuple[str, str], ...] = ()
    """Other Spark keys passed through verbatim (``--set spark.x=y`` for keys without a typed
    option). Keys must start with ``spark.`` and not name a typed or unknown project key."""
    profile: str | None = None
    """The profile this configuration started from; some rules depend on it."""

    def __post_init__(self) -> None:
        if self.profile is not None and self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; expected one of "
                              f"{', '.join(PROFILES)}")
        for key, value in self.extra:
            _check_extra(key, value)
        for rule in _RULES:
            rule(self)

    # -- construction --

    @classmethod
    def for_profile(cls, profile: str, *, endpoint: str | None = None,
                    region: str | None = None,
                    checkpoint_root: str | None = None) -> SparkConfig:
        """The starting point of ``profile`` (``minio``, ``aws`` or ``local``).

        ``minio``: S3A on an S3-compatible endpoint (path-style, region us-east-1, credentials
        from the environment, e.g. ``eval $(wj rig env)``). ``aws``: S3A on AWS S3 with the SDK's
        credential chain, no shuffle service (dynamic allocation with shuffle tracking) and
        decommissioning with shuffle and RDD block migration for spot instances. ``local``: one
        in-process ``local[2]`` session on loopback, UI off, UTC, Arrow on; S3A like ``minio`` when
        ``endpoint`` is given.
        """
        parquet = ParquetConfig(filter_pushdown=True, merge_schema=False,
                                summary_metadata="NONE")
        python = PythonConfig(arrow=True, worker_reuse=True, faulthandler=True)
        wj = WjioConfig(checkpoint_root=checkpoint_root)
        s3_compatible = dict(endpoint=endpoint, region=region or "us-east-1",
                             path_style_access=True, credentials="env", input_fadvise="random",
                             upload_buffer="bytebuffer")
        if profile == "minio":
            return cls(s3a=S3AConfig(**s3_compatible), parquet=parquet, python=python, wjio=wj,
                       profile=profile)
        if profile == "aws":
            return cls(
                s3a=S3AConfig(endpoint=endpoint, region=region, path_style_access=False,
                              credentials="chain", input_fadvise="random",
                              connection_maximum=200, threads_max=64, upload_buffer="disk"),
                parquet=parquet,
                allocation=AllocationConfig(dynamic=True, shuffle_service=False,
                                            shuffle_tracking=True, min_executors=0,
                                            shuffle_tracking_timeout="30min"),
                decommission=DecommissionConfig(enabled=True, storage=True, shuffle_blocks=True,
                                                rdd_blocks=True, force_kill_timeout="100s",
                                                ignore_fetch_failure=True),
                python=python, wjio=wj, profile=profile)
        if profile == "local":
            return cls(
                core=CoreConfig(master="local[2]", app_name="wjio", driver_host="127.0.0.1",
                                driver_bind_address="127.0.0.1", ui_enabled=False,
                                console_progress=False, shuffle_partitions=4,
                                default_parallelism=2, session_timezone="UTC",
                                heartbeat_interval="20s"),
                s3a=S3AConfig(**s3_compatible) if endpoint else S3AConfig(region=region),
                parquet=parquet, python=python, wjio=wj, profile=profile)
        raise ConfigError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")

    def with_settings(self, settings: Mapping[str, Any] | Iterable[tuple[str, Any]]
                      ) -> SparkConfig:
        """A copy with Spark keys set: typed keys are parsed and checked by their kind, other
        ``spark.*`` keys go to ``extra``. The result is validated as a whole."""
        items = settings.items() if isinstance(settings, Mapping) else settings
        groups = {g.section: {} for g in _GROUPS}
        extra = dict(self.extra)
        for key, value in items:
            key = key.strip()
            option = _BY_KEY.get(key)
            if option is not None:
                groups[option.group][option.name] = value
            elif key in _DERIVED_KEYS:
                raise ConfigError(f"{key} is derived {_DERIVED_KEYS[key]}; set that instead")
            else:
                _check_extra(key, value)
                extra[key] = str(value)
        replaced = {s: dataclasses.replace(getattr(self, s), **changes)
                    for s, changes in groups.items() if changes}
        return dataclasses.replace(self, **replaced, extra=tuple(extra.items()))

    @classmethod
    def from_spark_conf(cls, conf: Mapping[str, str] | Iterable[tuple[str, str]]
                        ) -> SparkConfig:
        """The typed configuration in a Spark conf (e.g. ``SparkConf().getAll()``): typed keys
        are parsed, the project's keys take their defaults when absent, other keys are
        ignored."""
        items = conf.items() if isinstance(conf, Mapping) else conf
        known = [(k, v) for k, v in items if k in _BY_KEY]
        return cls().with_settings(known)

    # -- rendering --

    def to_spark_conf(self) -> dict[str, str]:
        """``{spark key: value}`` of every set option, derived key and extra, in table order."""
        out: dict[str, str] = {}
        for option in OPTIONS:
            value = getattr(getattr(self, option.group), option.name)
            if value is None:
                continue
            out[option.key] = option.kind.render(option.key, value)
            if option.key == _k(S3AConfig, "endpoint"):
                out[_H + "connection.ssl.enabled"] = _Bool().render(
                    "", value.startswith("https://"))
        out.update(self.extra)
        return out

    def to_defaults(self) -> str:
        """``spark-defaults.conf`` text: one ``key value`` line per setting, grouped by section."""
        conf = self.to_spark_conf()
        command = "wj spark-conf" + (f" --profile {self.profile}" if self.profile else "")
        lines = [f"# spark-defaults.conf generated by `{command}`"]
        sections = [(g.title, [o.key for o in g.options()]) for g in _GROUPS]
        sections.append(("Other Spark settings", [k for k, _ in self.extra]))
        for title, keys in sections:
            if title == S3AConfig.title:
                keys = [*keys, *_DERIVED_KEYS]
            present = [k for k in keys if k in conf]
            if present:
                lines += ["", f"# {title}"]
                width = max(len(k) for k in present)
                lines += [f"{k:<{width}}  {conf[k]}" for k in present]
        return "\n".join(lines) + "\n"

    def to_submit_args(self) -> list[str]:
        """``spark-submit`` arguments: ``["--conf", "key=value", ...]``."""
        return [arg for k, v in self.to_spark_conf().items() for arg in ("--conf", f"{k}={v}")]

    def __repr__(self) -> str:
        parts = [f"profile={self.profile!r}"] if self.profile else []
        for g in _GROUPS:
            group = getattr(self, g.section)
            if group != g():
                parts.append(f"{g.section}={group!r}")
        if self.extra:
            parts.append(f"extra={self.extra!r}")
        return f"SparkConfig({', '.join(parts)})"


def _check_extra(key: str, value: Any) -> None:
    if key in _BY_KEY or key in _DERIVED_KEYS:
        raise ConfigError(f"{key} has a typed option; set it through the typed configuration")
    if key.startswith(PROJECT_PREFIX):
        near = difflib.get_close_matches(key, [o.key for o in OPTIONS], n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigError(f"unknown wjio key {key!r}{hint}")
    if not re.fullmatch(r"spark\.[A-Za-z0-9_.\-]+", key) or key.endswith("."):
        raise ConfigError(f"{key!r}: expected a Spark key like spark.sql.x")
    if not isinstance(value, str | int | float | bool) or "\n" in str(value):
        raise ConfigError(f"{key}: expected a single-line value, got {value!r}")


# -- documentation ------------------------------------------------------------------------


def reference_markdown() -> str:
    """``docs/configuration.md``: every option, the derived keys, the profiles and the rules,
    generated from this module (a test checks the committed file equals this)."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `wj spark-conf --reference` from spark_conf/config.py; do not edit. -->",
        "",
        "`wj spark-conf --profile minio|aws|local` renders one typed configuration as "
        "`spark-defaults.conf` text (`--format defaults`), `spark-submit` arguments "
        "(`--format submit`) or JSON (`--format json`); `--set key=value` sets any key below "
        "(or passes another `spark.*` key through). In Python: "
        "`spark_conf.config.SparkConfig.for_profile(...)`, and "
        "`spark_conf.session.builder_with(config)` for a `SparkSession.builder`.",
        "",
        "An option left unset is not rendered: Spark's or Hadoop's own default applies. The "
        "`spark.wjio.*` keys always render. Credentials are rendered only when given "
        "explicitly (`credentials=static`).",
    ]
    for g in _GROUPS:
        out += ["", f"## {g.title}", "", (g.__doc__ or "").strip(), "",
                "| Key | Type | Default | Description |", "|---|---|---|---|"]
        defaults = g()
        for o in g.options():
            value = getattr(defaults, o.name)
            shown = "unset" if value is None else f"`{o.kind.render(o.key, value)}`"
            kind = o.kind.name
            if isinstance(o.kind, _Str) and o.kind.choices:
                kind = " \\| ".join(o.kind.choices)
            elif isinstance(o.kind, _Named):
                kind = " \\| ".join(short for short, _ in o.kind.values)
            out.append(f"| `{o.key}` | {kind} | {shown} | {o.doc} |")
        if g is S3AConfig:
            out += [f"| `{k}` | boolean | derived | Set {why}. |"
                    for k, why in _DERIVED_KEYS.items()]
    out += ["", "## Profiles", "",
            "What each profile sets (the `minio` column with `--endpoint http://127.0.0.1:9000`)."
            " Everything else is unset, except the `spark.wjio.*` defaults.", "",
            "| Key | minio | aws | local |", "|---|---|---|---|"]
    confs = {p: SparkConfig.for_profile(p, endpoint="http://127.0.0.1:9000" if p == "minio"
                                        else None).to_spark_conf() for p in PROFILES}
    keys = [o.key for o in OPTIONS if not o.key.startswith(PROJECT_PREFIX)] + list(_DERIVED_KEYS)
    for key in keys:
        if any(key in c for c in confs.values()):
            cells = [f"`{confs[p][key]}`" if key in confs[p] else "" for p in PROFILES]
            out.append(f"| `{key}` | {' | '.join(cells)} |")
    out += ["", "## Rules", "", "A configuration breaking one of these is refused with an error "
            "naming the keys involved:", ""]
    out += [f"- {' '.join((r.__doc__ or '').split())}" for r in _RULES]
    return "\n".join(out) + "\n"
