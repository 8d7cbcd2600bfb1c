"""The typed configuration of a wjio Spark deployment, rendered as Spark configuration.

One :class:`SparkConfig` (frozen dataclasses, one per concern) renders as ``spark-defaults.conf``
text, as the ``{key: value}`` a ``SparkSession.builder`` takes, and as ``spark-submit --conf``
arguments. Every option is declared once, as a dataclass field whose metadata carries its Spark
key, value kind and documentation; that one table drives construction checks, rendering,
parsing (``--set key=value``, a running session's conf) and ``docs/configuration.md``. The
value kinds are :mod:`spark_conf.options`, the option groups :mod:`spark_conf.option_groups`;
the rules combining them and the whole configuration are here.

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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from spark_conf.option_groups import (
    BY_KEY,
    DERIVED_KEYS,
    GROUPS,
    OPTIONS,
    S3A,
    AllocationConfig,
    CoreConfig,
    DecommissionConfig,
    ParquetConfig,
    PythonConfig,
    S3AConfig,
    WjioConfig,
)
from spark_conf.options import PROJECT_PREFIX, Bool, ConfigError, Group, Named, Str

PROFILES = ("minio", "aws", "local")

# -- rules ----------------------------------------------------------------------------------


_RULES: list[Callable[[SparkConfig], None]] = []


def _rule(fn: Callable[[SparkConfig], None]) -> Callable[[SparkConfig], None]:
    """Register a combination rule; its docstring is its entry in the configuration reference."""
    _RULES.append(fn)
    return fn


def _k(group: type[Group], name: str) -> str:
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
        groups = {g.section: {} for g in GROUPS}
        extra = dict(self.extra)
        for key, value in items:
            key = key.strip()
            option = BY_KEY.get(key)
            if option is not None:
                groups[option.group][option.name] = value
            elif key in DERIVED_KEYS:
                raise ConfigError(f"{key} is derived {DERIVED_KEYS[key]}; set that instead")
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
        known = [(k, v) for k, v in items if k in BY_KEY]
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
                out[S3A + "connection.ssl.enabled"] = Bool().render(
                    "", value.startswith("https://"))
        out.update(self.extra)
        return out

    def to_defaults(self) -> str:
        """``spark-defaults.conf`` text: one ``key value`` line per setting, grouped by section."""
        conf = self.to_spark_conf()
        command = "wj spark-conf" + (f" --profile {self.profile}" if self.profile else "")
        lines = [f"# spark-defaults.conf generated by `{command}`"]
        sections = [(g.title, [o.key for o in g.options()]) for g in GROUPS]
        sections.append(("Other Spark settings", [k for k, _ in self.extra]))
        for title, keys in sections:
            if title == S3AConfig.title:
                keys = [*keys, *DERIVED_KEYS]
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
        for g in GROUPS:
            group = getattr(self, g.section)
            if group != g():
                parts.append(f"{g.section}={group!r}")
        if self.extra:
            parts.append(f"extra={self.extra!r}")
        return f"SparkConfig({', '.join(parts)})"


def _check_extra(key: str, value: Any) -> None:
    if key in BY_KEY or key in DERIVED_KEYS:
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
    for g in GROUPS:
        out += ["", f"## {g.title}", "", (g.__doc__ or "").strip(), "",
                "| Key | Type | Default | Description |", "|---|---|---|---|"]
        defaults = g()
        for o in g.options():
            value = getattr(defaults, o.name)
            shown = "unset" if value is None else f"`{o.kind.render(o.key, value)}`"
            kind = o.kind.name
            if isinstance(o.kind, Str) and o.kind.choices:
                kind = " \\| ".join(o.kind.choices)
            elif isinstance(o.kind, Named):
                kind = " \\| ".join(short for short, _ in o.kind.values)
            out.append(f"| `{o.key}` | {kind} | {shown} | {o.doc} |")
        if g is S3AConfig:
            out += [f"| `{k}` | boolean | derived | Set {why}. |"
                    for k, why in DERIVED_KEYS.items()]
    out += ["", "## Profiles", "",
            "What each profile sets (the `minio` column with `--endpoint http://127.0.0.1:9000`)."
            " Everything else is unset, except the `spark.wjio.*` defaults.", "",
            "| Key | minio | aws | local |", "|---|---|---|---|"]
    confs = {p: SparkConfig.for_profile(p, endpoint="http://127.0.0.1:9000" if p == "minio"
                                        else None).to_spark_conf() for p in PROFILES}
    keys = [o.key for o in OPTIONS if not o.key.startswith(PROJECT_PREFIX)] + list(DERIVED_KEYS)
    for key in keys:
        if any(key in c for c in confs.values()):
            cells = [f"`{confs[p][key]}`" if key in confs[p] else "" for p in PROFILES]
            out.append(f"| `{key}` | {' | '.join(cells)} |")
    out += ["", "## Rules", "", "A configuration breaking one of these is refused with an error "
            "naming the keys involved:", ""]
    out += [f"- {' '.join((r.__doc__ or '').split())}" for r in _RULES]
    return "\n".join(out) + "\n"
