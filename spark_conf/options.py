"""Value kinds and the option machinery of :mod:`spark_conf.config`: how one option's value
is checked, parsed from a Spark string and rendered back, and the dataclass field that
declares an option (its Spark key, kind and documentation)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar
from urllib.parse import urlsplit

from wjio.errors import WjioError

KiB = 1024
MiB = 1024 * KiB

PROJECT_PREFIX = "spark.wjio."


class ConfigError(WjioError, ValueError):
    """A configuration value is malformed, or options are combined in a way that cannot work.

    The message names the Spark key(s) involved and what was expected.
    """


# -- value kinds --------------------------------------------------------------------------


class Kind:
    """How one option's value is checked, parsed from a Spark string and rendered back."""

    name: ClassVar[str]

    def coerce(self, key: str, value: Any) -> Any:
        """The canonical Python value for ``value`` (a Python value or a Spark string)."""
        raise NotImplementedError

    def render(self, key: str, value: Any) -> str:
        return str(value)


class Bool(Kind):
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
class Int(Kind):
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
class Str(Kind):
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
class Named(Kind):
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
class Bytes(Kind):
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
            raise ConfigError(f"{key}: expected at least {size_text(self.minimum)}, "
                              f"got {size_text(value)}")
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
class Duration(Kind):
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


def size_text(n: int) -> str:
    return Bytes().render("", n)


# -- value checks -------------------------------------------------------------------------


def endpoint(key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: expected an http:// or https:// URL, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{key}: expected scheme://host[:port] without a path, got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def s3_prefix(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
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


def timezone(key: str, value: str) -> str:
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
    kind: Kind
    doc: str
    secret: bool = False

    @property
    def path(self) -> str:
        return f"{self.group}.{self.name}"


def opt(key: str, kind: Kind, doc: str, default: Any = None, *, secret: bool = False):
    return field(default=default, repr=not secret,
                 metadata={"key": key, "kind": kind, "doc": doc, "secret": secret})


class Group:
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
