"""The ``wjio`` Spark data source: ``spark.read.format("wjio").load("s3://bucket/table/")``.

Built on Spark's Python data source API (pyspark >= 4.1, which has filter pushdown). Where
each step runs and what it does:

- ``schema()`` (a Python planning worker): wjio lists the dataset and reads the footers; its
  Arrow schema (file columns, then Hive partition columns) becomes Spark's, every field
  nullable, as Spark's own file sources read Parquet.
- ``reader(schema)`` (planning worker): the same listing gives the Arrow types the pushed
  filters are checked against (footers are re-read, or taken from wjio's per-(object, ETag)
  cache when the worker process read them before).
- ``pushFilters()``: each of Spark's filters that wjio evaluates with Spark's exact semantics
  becomes a ``pyarrow.compute`` expression; the others go back to Spark. wjio prunes files and
  row groups with the expression and applies it exactly to the decoded rows, and Spark does
  not evaluate pushed filters again, so only exact translations are pushed: none on floating
  point columns (Spark orders NaN above all numbers and NaN = NaN; Arrow does neither), none
  whose literal does not convert exactly into the column's Arrow type.
- ``partitions()``: wjio plans the scan with those filters and the surviving row groups are
  packed, in file order, into partitions of up to ``targetPartitionBytes`` of needed column
  chunk bytes (and at most ``rowGroupsPerPartition`` row groups). A partition names objects by
  URI, size and ETag, their raw partition values and row group indices; no footers: footers
  are ~100 KB each and a file's footer would travel in every partition holding one of its
  row groups, while a worker reads it once (one suffix GET that usually also brings a small
  file's column chunks) and then keeps it per (object, ETag).
- ``read(partition)`` (Python executor worker): scans exactly those row groups with wjio
  (``ParquetScan.of_row_groups``) and yields Arrow record batches cast to Spark's Arrow schema.
  An object replaced since planning fails with wjio's ``ObjectChangedError`` (ETag mismatch).

Projection: Spark gives Python data sources no required columns (its ``PythonScanBuilder``
pushes filters only), so a scan reads the columns of its schema: all of them by default, the
ones named by ``.option("columns", "a,b")``, or those of a user's ``.schema(...)``.

Options (``.option(key, value)``):

``columns``                comma-separated columns to read (default: all)
``targetPartitionBytes``   needed bytes per Spark partition (default 128 MiB, like Spark's
                           ``spark.sql.files.maxPartitionBytes``)
``rowGroupsPerPartition``  at most this many row groups per partition (default: no limit)
``endpoint``, ``region``   the S3 endpoint URL and region (default: the AWS environment)

Credentials come from the standard AWS chain in each Python worker (Spark's workers inherit
the environment of the process that started the JVM); they are not options, so that they
never appear in plans or logs.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wjio import errors, predicate
from wjio.dataset import DataFile
from wjio.options import MiB, StoreOptions
from wjio.scan import ParquetScan, RowGroupSelection, RowGroupTask
from wjio.store import ObjectInfo
from wjio.sync import run
from wjio.uri import S3Path

try:
    from pyspark.sql.datasource import (
        DataSource,
        DataSourceReader,
        EqualNullSafe,
        EqualTo,
        Filter,
        GreaterThan,
        GreaterThanOrEqual,
        In,
        InputPartition,
        IsNotNull,
        IsNull,
        LessThan,
        LessThanOrEqual,
        Not,
        StringContains,
        StringEndsWith,
        StringStartsWith,
    )
except ImportError as e:  # pyspark 4.0 has Python data sources but no filter pushdown
    raise ImportError(
        f"the wjio Spark data source needs pyspark >= 4.1 (Python data source filter "
        f"pushdown): {e}"
    ) from e
from pyspark.sql.pandas.types import from_arrow_type, to_arrow_schema, to_arrow_type
from pyspark.sql.types import DataType, StructField, StructType

NAME = "wjio"
PUSHDOWN_CONF = "spark.sql.python.filterPushdown.enabled"
DEFAULT_TARGET_PARTITION_BYTES = 128 * MiB


class DataSourceOptionError(errors.WjioError, ValueError):
    """An option of the ``wjio`` data source is missing, malformed or contradicts another."""


class UnsupportedTypeError(errors.WjioError, TypeError):
    """A column's Arrow type has no Spark equivalent."""


def register(spark) -> None:
    """Make ``spark.read.format("wjio")`` available in this session, with filter pushdown
    (``spark.sql.python.filterPushdown.enabled``, which a reader that pushes filters needs)."""
    spark.conf.set(PUSHDOWN_CONF, "true")
    spark.dataSource.register(WjioDataSource)


# -- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadOptions:
    """The data source's options, parsed and checked once."""

    paths: tuple[str, ...]
    columns: tuple[str, ...] | None
    target_partition_bytes: int
    row_groups_per_partition: int | None
    store: StoreOptions

    @classmethod
    def parse(cls, options) -> ReadOptions:
        """From Spark's (case-insensitive) option map."""
        paths = _paths(options)
        columns = None
        if options.get("columns") is not None:
            columns = tuple(c.strip() for c in options["columns"].split(","))
            if not all(columns):
                raise DataSourceOptionError(
                    f"wjio option columns={options['columns']!r}: expected comma-separated "
                    f"column names"
                )
        return cls(
            paths=paths,
            columns=columns,
            target_partition_bytes=_positive_int(
                options, "targetPartitionBytes", DEFAULT_TARGET_PARTITION_BYTES
            ),
            row_groups_per_partition=_positive_int(options, "rowGroupsPerPartition", None),
            store=StoreOptions(endpoint_url=options.get("endpoint"), region=options.get("region")),
        )

    @property
    def where(self) -> str:
        more = len(self.paths) - 1
        return self.paths[0] + (f" (+{more})" if more else "")


def _paths(options) -> tuple[str, ...]:
    if options.get("paths"):  # load([a, b]) passes a JSON list
        try:
            paths = json.loads(options["paths"])
        except ValueError as e:
            raise DataSourceOptionError(f"wjio option paths is not a JSON list: {e}") from e
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise DataSourceOptionError(f"wjio option paths={paths!r}: expected a list of URIs")
    else:
        paths = [options["path"]] if options.get("path") else []
    if not paths:
        raise DataSourceOptionError(
            'the wjio data source needs a path: spark.read.format("wjio").load("s3://bucket/table/")'
        )
    for p in paths:
        try:
            S3Path.parse(p)
        except ValueError as e:
            raise DataSourceOptionError(f"wjio path {p!r}: {e}") from e
    return tuple(paths)


def _positive_int(options, key: str, default: int | None) -> int | None:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DataSourceOptionError(f"wjio option {key}={raw!r}: expected a positive integer")
    return value


# -- schema -------------------------------------------------------------------------------


def spark_schema(schema: pa.Schema) -> StructType:
    """Spark's schema for wjio's Arrow schema; every field nullable, as Spark reads Parquet."""
    return StructType([StructField(f.name, spark_type(f), nullable=True) for f in schema])


def spark_type(field: pa.Field) -> DataType:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    try:
        return from_arrow_type(t, prefer_timestamp_ntz=True)
    except Exception as e:  # pyspark raises its own error types for unsupported types
        raise UnsupportedTypeError(
            f"column {field.name!r} has Arrow type {field.type}, which has no Spark type: {e}"
        ) from e


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark expects the record batches of ``read()`` in (exactly)."""
    return to_arrow_schema(schema, timezone="UTC")


def _dataset(options: ReadOptions, columns: Sequence[str] | None) -> pa.Schema:
    """The Arrow schema of the dataset's ``columns`` (all when None) as wjio reads it."""
    scan = ParquetScan(list(options.paths), columns=columns, store=options.store)
    return run(scan.plan()).projection.output


# -- the data source ----------------------------------------------------------------------


class WjioDataSource(DataSource):
    """``spark.read.format("wjio")``: Parquet on S3 through wjio's precise-prefetch reader."""

    def __init__(self, options) -> None:
        super().__init__(options)
        self.read_options = ReadOptions.parse(options)

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> StructType:
        return spark_schema(_dataset(self.read_options, self.read_options.columns))

    def reader(self, schema: StructType) -> WjioReader:
        return WjioReader(self.read_options, schema)


@dataclass(frozen=True)
class _FileSlice:
    """Row groups of one object; plain values only, so partitions pickle small."""

    uri: str
    size: int
    etag: str | None
    partition: tuple[tuple[str, str | None], ...]
    row_groups: tuple[int, ...]


@dataclass
class WjioPartition(InputPartition):
    """Consecutive row groups of one or more files, read by one Spark task."""

    slices: tuple[_FileSlice, ...]
    needed_bytes: int


class WjioReader(DataSourceReader):
    """Plans with wjio on the driver side and scans the planned row groups in the workers."""

    def __init__(self, options: ReadOptions, schema: StructType) -> None:
        self.options = options
        self.schema = schema
        self.columns = tuple(schema.fieldNames())
        if options.columns is not None and options.columns != self.columns:
            raise DataSourceOptionError(
                f"{options.where}: option columns={','.join(options.columns)} contradicts the "
                f"given schema's columns {','.join(self.columns)}; give one of them"
            )
        scan = ParquetScan(list(options.paths), columns=list(self.columns), store=options.store)
        plan = run(scan.plan())
        self.arrow = plan.projection.output
        """wjio's Arrow schema of the columns read (the types filters are checked against)."""
        names = {k for f in plan.files for k, _ in f.partition}
        self.partitions_schema = pa.schema([f for f in plan.schema if f.name in names])
        self.filter: pc.Expression | None = None
        self.pushed: tuple[Filter, ...] = ()

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        for f in filters:
            expr = filter_expression(f, self.arrow, self.schema)
            if expr is None:
                yield f
                continue
            self.filter = expr if self.filter is None else self.filter & expr
            self.pushed += (f,)

    def partitions(self) -> list[WjioPartition]:
        o = self.options
        scan = ParquetScan(
            list(o.paths), columns=list(self.columns), filter=self.filter, store=o.store
        )
        plan = run(scan.plan())
        files = {f.info.path: f for f in plan.files}
        return pack(plan.tasks, files, o.target_partition_bytes, o.row_groups_per_partition)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        if not isinstance(partition, WjioPartition):
            return  # Spark's single empty partition when every row group was pruned
        selections = [
            RowGroupSelection(
                DataFile(ObjectInfo(S3Path.parse(s.uri), s.size, s.etag), s.partition),
                s.row_groups,
            )
            for s in partition.slices
        ]
        scan = ParquetScan.of_row_groups(
            selections, self.partitions_schema, columns=list(self.columns), filter=self.filter,
            store=self.options.store,
        )
        target = arrow_schema(self.schema)
        for batch in scan.to_batches():
            yield batch.cast(target)


def pack(
    tasks: Sequence[RowGroupTask],
    files: dict[S3Path, DataFile],
    target_bytes: int,
    max_row_groups: int | None,
) -> list[WjioPartition]:
    """Row groups in file order, cut into partitions of at most ``target_bytes`` needed bytes
    (a larger row group alone) and at most ``max_row_groups`` row groups."""
    out: list[WjioPartition] = []
    current: list[RowGroupTask] = []
    size = 0

    def flush() -> None:
        slices: list[_FileSlice] = []
        for t in current:
            info = t.footer.info
            if slices and slices[-1].uri == str(info.path):
                last = slices[-1]
                slices[-1] = _FileSlice(
                    last.uri, last.size, last.etag, last.partition,
                    (*last.row_groups, t.row_group),
                )
            else:
                slices.append(
                    _FileSlice(
                        str(info.path), info.size, info.etag, files[info.path].partition,
                        (t.row_group,),
                    )
                )
        out.append(WjioPartition(tuple(slices), size))

    for t in tasks:
        full = max_row_groups is not None and len(current) >= max_row_groups
        if current and (full or size + t.needed_bytes > target_bytes):
            flush()
            current, size = [], 0
        current.append(t)
        size += t.needed_bytes
    if current:
        flush()
    return out


# -- filter pushdown ----------------------------------------------------------------------

_ORDERED = {
    GreaterThan: lambda f, v: f > v,
    GreaterThanOrEqual: lambda f, v: f >= v,
    LessThan: lambda f, v: f < v,
    LessThanOrEqual: lambda f, v: f <= v,
}


def filter_expression(
    f: Filter, arrow: pa.Schema, schema: StructType
) -> pc.Expression | None:
    """The expression wjio evaluates exactly as Spark evaluates ``f``, or None if there is
    none (then Spark evaluates ``f``). ``arrow`` holds the columns' types as wjio reads them,
    ``schema`` Spark's types of the same columns."""
    expr = _translate(f, arrow, schema)
    if expr is None:
        return None
    try:
        predicate.validate(expr, arrow, "the wjio data source")
    except errors.InvalidPredicateError:
        return None
    return expr


def _translate(f: Filter, arrow: pa.Schema, schema: StructType) -> pc.Expression | None:
    if isinstance(f, Not):
        child = _translate(f.child, arrow, schema)
        if child is None:
            return None
        if isinstance(f.child, In):
            # Arrow's is_in gives false (not null) for a null input, so NOT would keep it.
            if any(v is None for v in f.child.value):
                return None  # NOT IN a list holding null is never true: leave it to Spark
            return pc.field(f.child.attribute[0]).is_valid() & ~child
        return ~child  # every other translation is null exactly where Spark's is, or 2-valued
    column = _column(f, arrow, schema)
    if column is None:
        return None
    name, t = column
    field = pc.field(name)
    if isinstance(f, IsNull):
        return field.is_null()
    if isinstance(f, IsNotNull):
        return field.is_valid()
    if not _comparable(t):
        return None
    if isinstance(f, In):
        values = [v for v in f.value if v is not None]
        literals = [_literal(v, t) for v in values]
        if not values or any(x is None for x in literals):
            return None
        return field.isin(pa.array([x.as_py() for x in literals], type=t))
    if isinstance(f, EqualNullSafe) and f.value is None:
        return field.is_null()
    value = _literal(f.value, t)
    if value is None:
        return None
    if isinstance(f, EqualTo):
        return field == value
    if isinstance(f, EqualNullSafe):
        return field.is_valid() & (field == value)
    if type(f) in _ORDERED:
        return _ORDERED[type(f)](field, value)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        pattern = f.value
        if isinstance(f, StringStartsWith):
            # ``>= prefix`` is implied by the prefix, and lets min/max statistics prune.
            return (field >= value) & pc.starts_with(field, pattern=pattern)
        if isinstance(f, StringEndsWith):
            return pc.ends_with(field, pattern=pattern)
        if isinstance(f, StringContains):
            return pc.match_substring(field, pattern=pattern)
    return None


def _column(f: Filter, arrow: pa.Schema, schema: StructType) -> tuple[str, pa.DataType] | None:
    """The top-level column ``f`` tests and its Arrow type, if Spark's type of the column is
    that same type (a user's ``.schema()`` may declare another, which Arrow then casts to)."""
    path = getattr(f, "attribute", ())
    if len(path) != 1 or path[0] not in arrow.names or path[0] not in schema.fieldNames():
        return None
    t = arrow.field(path[0]).type
    if not pa.types.is_dictionary(t):
        try:
            spark_t = to_arrow_type(schema[path[0]].dataType, timezone="UTC")
        except Exception:
            return None
        if _widened(spark_t).equals(_widened(t)):
            return path[0], t
    return None


def _widened(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    return t


def _comparable(t: pa.DataType) -> bool:
    """Types whose comparisons are the same in Arrow and Spark (not floats: NaN)."""
    return (
        pa.types.is_signed_integer(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date32(t)
        or pa.types.is_timestamp(t)
    )


def _literal(value: object, t: pa.DataType) -> pa.Scalar | None:
    """``value`` as a scalar of ``t`` if it converts exactly, else None."""
    if not _literal_fits(value, t):
        return None
    try:
        return pa.scalar(value, type=t)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def _literal_fits(value: object, t: pa.DataType) -> bool:
    if pa.types.is_boolean(t):
        return isinstance(value, bool)
    if pa.types.is_signed_integer(t):
        return isinstance(value, int) and not isinstance(value, bool)
    if pa.types.is_decimal(t):
        return isinstance(value, decimal.Decimal | int) and not isinstance(value, bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return isinstance(value, str)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return isinstance(value, bytes | bytearray)
    if pa.types.is_date32(t):
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if pa.types.is_timestamp(t):
        # Spark passes TIMESTAMP literals as aware datetimes, TIMESTAMP_NTZ as naive ones.
        return isinstance(value, dt.datetime) and (value.tzinfo is None) == (t.tz is None)
    return False
