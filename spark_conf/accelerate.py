"""One-line acceleration of PySpark: DataFrame actions run natively where the plan allows.

    import spark_conf
    spark_conf.enable(spark)          # this session's actions now try the native executor
    df.collect(); df.toPandas(); df.write.parquet("out/")
    print(spark_conf.report(spark))   # each action: native or on Spark (and why), wall time
    spark_conf.disable(spark)

Accelerated actions: ``collect``, ``toArrow``, ``toPandas``, ``count`` and ``write.parquet`` of
classic (non-Connect) DataFrames whose ``sparkSession`` was enabled; every other session, and
every other method, is untouched. Each action runs through
:func:`executor.frontend.spark.execute`: natively when Spark's optimized plan translates
exactly, on stock Spark otherwise. What holds:

- The answer is stock Spark's: the native Arrow result is cast to the Arrow schema Spark itself
  produces for the DataFrame, and handed to pyspark's own conversions (``toArrow`` and
  ``toPandas`` run pyspark's code on it; ``collect`` builds Rows with pyspark's Arrow-to-Row
  conversion, binary as ``bytes`` or ``bytearray`` per ``spark.sql.execution.pyspark.
  binaryAsBytes`` like classic ``collect``). ``count`` counts with a global
  aggregate. ``write.parquet`` computes natively and writes with Spark's writer (same mode,
  options, partitioning; the rows pass through the driver).
- A DataFrame whose result has a type outside :data:`HANDLED_TYPES` runs the stock action
  unchanged (reason in the report), as does every action while ``spark.wjio.native.enabled``
  is false. With ``spark.wjio.fallback=error`` an action that would fall back raises
  :class:`AccelerationError` instead (both keys are read from the session's conf at each
  action, so ``spark.conf.set`` applies to the next one).
- Errors of the query itself propagate; the report records them. An executor internal error
  (a translator self-check failing) runs the action on Spark instead, with the error as the
  reason: it is a bug to fix, not a reason to fail the user's job.

pyspark is imported inside functions: this module imports without Spark.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from spark_conf.config import SparkConfig
from wjio.errors import WjioError

HANDLED_TYPES = ("BooleanType", "ByteType", "ShortType", "IntegerType", "LongType", "FloatType",
                 "DoubleType", "DecimalType", "StringType", "BinaryType", "DateType",
                 "TimestampType", "TimestampNTZType", "NullType")
"""The Spark types (``pyspark.sql.types`` class names) whose Arrow form converts back exactly as
stock ``collect`` and ``toPandas`` give them; arrays, maps and structs of them too."""


class AccelerationError(WjioError, RuntimeError):
    """A session cannot be accelerated, or an action fell back under ``spark.wjio.fallback=
    error``; the message names the session or action and the reason."""


@dataclass(frozen=True)
class ActionRecord:
    """One accelerated action: ``native`` (True) or run on Spark with ``reason``; ``rows``
    returned or written (for ``count`` the count; None when unknown: a stock write, or the
    action failed with ``error``)."""

    action: str
    native: bool
    seconds: float
    rows: int | None = None
    reason: str | None = None
    error: str | None = None


@dataclass
class Report:
    """The actions of one enabled session, in order."""

    actions: list[ActionRecord] = field(default_factory=list)

    @property
    def native(self) -> int:
        return sum(1 for a in self.actions if a.native)

    @property
    def fallbacks(self) -> int:
        return sum(1 for a in self.actions if not a.native)

    def __str__(self) -> str:
        total = sum(a.seconds for a in self.actions)
        lines = [f"wjio acceleration: {len(self.actions)} action(s), {self.native} native, "
                 f"{self.fallbacks} on Spark, {total:.3f}s"]
        if self.actions:
            width = max(len(a.action) for a in self.actions)
            lines.append(f"  {'#':>3}  {'action':<{width}}  engine  {'seconds':>8}  "
                         f"{'rows':>9}  reason")
        for i, a in enumerate(self.actions, 1):
            engine = "native" if a.native else "spark"
            rows = "" if a.rows is None else str(a.rows)
            note = a.reason or ""
            if a.error:
                note = f"{note}; failed: {a.error}" if note else f"failed: {a.error}"
            lines.append(f"  {i:>3}  {a.action:<{width}}  {engine:<6}  {a.seconds:>8.3f}  "
                         f"{rows:>9}  {note}".rstrip())
        return "\n".join(lines)


# -- which sessions are enabled -----------------------------------------------------------


@dataclass
class _Session:
    spark: Any
    context: Callable[[], Any]
    report: Report = field(default_factory=Report)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, rec: ActionRecord) -> None:
        with self.lock:
            self.report.actions.append(rec)


_lock = threading.Lock()
_sessions: dict[int, _Session] = {}
_originals: dict[str, Any] = {}
_inside = threading.local()
"""``active`` is set while an accelerated action runs on this thread: the DataFrame methods it
calls (Spark's fallback, pyspark's conversions) are the stock ones."""


def enable(spark, *, context: Callable[[], Any] | None = None) -> None:
    """Accelerate the DataFrame actions of ``spark`` (a classic SparkSession) until
    :func:`disable`. ``context`` makes the :class:`executor.context.ExecContext` of each action
    (default: ``ExecContext()``). Enabling an enabled session keeps its report."""
    if not hasattr(spark, "_jsparkSession"):
        raise AccelerationError(f"enable(): {type(spark).__module__}.{type(spark).__name__} is "
                                f"not a classic SparkSession (Spark Connect sessions are not "
                                f"accelerated)")
    if context is None:
        from executor.context import ExecContext

        context = ExecContext
    with _lock:
        state = _sessions.get(id(spark))
        if state is not None and state.spark is spark:
            state.context = context
            return
        _sessions[id(spark)] = _Session(spark, context)
        if not _originals:
            _install()


def disable(spark) -> Report:
    """Stop accelerating ``spark``; its report. The DataFrame class is restored once no
    session is enabled."""
    with _lock:
        state = _sessions.get(id(spark))
        if state is None or state.spark is not spark:
            raise AccelerationError("disable(): this SparkSession is not enabled")
        del _sessions[id(spark)]
        if not _sessions:
            _uninstall()
        return state.report


def enabled(spark) -> bool:
    state = _sessions.get(id(spark))
    return state is not None and state.spark is spark


def report(spark) -> Report:
    """The report of an enabled session (a live view: later actions appear in it)."""
    state = _sessions.get(id(spark))
    if state is None or state.spark is not spark:
        raise AccelerationError("report(): this SparkSession is not enabled")
    return state.report


@contextlib.contextmanager
def enable_on_create(config: SparkConfig | None = None) -> Iterator[list[Report]]:
    """Within the block, every session ``SparkSession.builder.getOrCreate()`` returns is
    enabled (``wj submit``). ``config``'s keys fill in what the builder does not set itself.
    Yields the reports of those sessions, appended as they are enabled; they stay readable
    after the block and after ``spark.stop()``."""
    from pyspark.sql.session import SparkSession

    builder_cls = SparkSession.Builder
    original = builder_cls.getOrCreate
    reports: list[Report] = []
    defaults = config.to_spark_conf() if config is not None else {}

    def get_or_create(self):
        with self._lock:
            for key, value in defaults.items():
                if key not in self._options:
                    self._options[key] = value
        spark = original(self)
        if hasattr(spark, "_jsparkSession"):
            enable(spark)
            rep = report(spark)
            if not any(r is rep for r in reports):
                reports.append(rep)
        return spark

    builder_cls.getOrCreate = get_or_create
    try:
        yield reports
    finally:
        builder_cls.getOrCreate = original
        for rep in reports:
            with _lock:
                for key, state in list(_sessions.items()):
                    if state.report is rep:
                        del _sessions[key]
                if not _sessions and _originals:
                    _uninstall()


def _state_of(df) -> _Session | None:
    if getattr(_inside, "active", False):
        return None
    spark = df.sparkSession
    state = _sessions.get(id(spark))
    return state if state is not None and state.spark is spark else None


# -- patching the classic DataFrame -------------------------------------------------------


def _install() -> None:
    from pyspark.sql.classic.dataframe import DataFrame

    _originals.update(collect=DataFrame.collect, toArrow=DataFrame.toArrow,
                      toPandas=DataFrame.toPandas, count=DataFrame.count,
                      write=DataFrame.__dict__["write"])

    def collect(self):
        state = _state_of(self)
        if state is None:
            return _originals["collect"](self)
        return _run(state, "collect", self, _collect_rows, len)

    def to_arrow(self):
        state = _state_of(self)
        if state is None:
            return _originals["toArrow"](self)
        return _run(state, "toArrow", self,
                    lambda df, t: _originals["toArrow"](_view(df, t)), len)

    def to_pandas(self):
        state = _state_of(self)
        if state is None:
            return _originals["toPandas"](self)
        return _run(state, "toPandas", self,
                    lambda df, t: _originals["toPandas"](_view(df, t)), len)

    def count(self):
        state = _state_of(self)
        if state is None:
            return _originals["count"](self)
        return _run(state, "count", self, lambda df, t: int(t.column(0)[0].as_py()),
                    lambda n: n, query=lambda df: df.groupBy().count())

    def write(self):
        if _state_of(self) is None:
            return _originals["write"].fget(self)
        return _writer_class()(self)

    DataFrame.collect = collect
    DataFrame.toArrow = to_arrow
    DataFrame.toPandas = to_pandas
    DataFrame.count = count
    DataFrame.write = property(write)


def _uninstall() -> None:
    from pyspark.sql.classic.dataframe import DataFrame

    for name, original in _originals.items():
        setattr(DataFrame, name, original)
    _originals.clear()


# -- running one action -------------------------------------------------------------------


def _policy(spark) -> str | None:
    """Why this session's actions run on Spark without trying (None: try native); raises for a
    malformed or contradictory ``spark.wjio.*`` setting."""
    keys = ("spark.wjio.native.enabled", "spark.wjio.fallback")
    settings = {k: v for k in keys if (v := spark.conf.get(k, None)) is not None}
    wj = SparkConfig().with_settings(settings).wjio
    return None if wj.native else "spark.wjio.native.enabled=false"


def _fallback_is_error(spark) -> bool:
    return spark.conf.get("spark.wjio.fallback", "spark") == "error"


def _run(state: _Session, action: str, df, finish, count_rows, *, query=None):
    """Run ``action`` on ``df``: the native or fallback Arrow table of ``query(df)`` (default
    ``df``) through ``finish(df, table)``, or the stock action when the session or the result
    type rules native out. Records the outcome in the session's report."""
    with _recorded(state, action) as outcome:
        outcome.reason = _policy(df.sparkSession) or _unhandled(df.schema)
        executed = None
        if outcome.reason is None:
            executed, outcome.reason = _execute(state, df.sparkSession, query(df) if query else df)
        if executed is None or not executed.native:
            _refuse_fallback(df, action, outcome.reason)
        if executed is None:
            result = _originals[action](df)
        else:
            outcome.native = executed.native
            result = finish(df, executed.table)
        outcome.rows = count_rows(result)
    return result


def _execute(state: _Session, spark, query):
    """``(QueryResult, its fallback reason)``, or ``(None, reason)`` when the executor failed
    an internal check (a translator bug caught before any wrong answer): the action then runs
    on stock Spark and the report says why."""
    from executor.errors import InternalError
    from executor.frontend import execute

    try:
        executed = execute(spark, query, ctx=state.context())
    except InternalError as err:
        return None, f"executor internal error: {err}"
    return executed, executed.reason


@dataclass
class _Outcome:
    native: bool = False
    reason: str | None = None
    rows: int | None = None


@contextlib.contextmanager
def _recorded(state: _Session, action: str) -> Iterator[_Outcome]:
    """Marks this thread as inside an action (stock DataFrame methods within) and records the
    action's outcome, failed or not, with its wall time."""
    outcome = _Outcome()
    start = time.perf_counter()
    _inside.active = True
    error = None
    try:
        yield outcome
    except BaseException as err:
        error = f"{type(err).__name__}: {err}".splitlines()[0]
        raise
    finally:
        _inside.active = False
        state.record(ActionRecord(action, outcome.native, time.perf_counter() - start,
                                  None if error else outcome.rows, outcome.reason, error))


def _refuse_fallback(df, action: str, reason: str) -> None:
    if _fallback_is_error(df.sparkSession):
        raise AccelerationError(f"{action}: the plan cannot run natively and "
                                f"spark.wjio.fallback=error: {reason}")


def _spark_arrow(table, df, *, large: bool = False):
    """``table`` (a native or Spark result of ``df``) in the Arrow schema Spark gives ``df``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=large)
    if table.num_columns != len(schema):
        raise AccelerationError(f"native result has {table.num_columns} column(s) "
                                f"{table.column_names}, the DataFrame {len(schema)} "
                                f"{schema.names}")
    return table.rename_columns(schema.names).cast(schema)


def _view(df, table):
    """A DataFrame on ``df``'s plan whose data comes from ``table``: pyspark's ``toArrow`` and
    ``toPandas`` run on it unchanged (both fetch through ``_collect_as_arrow``, or ``collect``
    for toPandas without Arrow)."""
    from pyspark.sql.classic.dataframe import DataFrame

    view = DataFrame(df._jdf, df.sparkSession)

    def collect_as_arrow(split_batches: bool = False, empty_list_if_zero_records: bool = True,
                         prefers_large_var_types: bool = False):
        arrow = _spark_arrow(table, df, large=prefers_large_var_types)
        if arrow.num_rows:
            return arrow.combine_chunks().to_batches()
        return [] if empty_list_if_zero_records else _empty_batch(arrow.schema)

    view._collect_as_arrow = collect_as_arrow
    view.collect = lambda: _collect_rows(df, table)
    return view


def _empty_batch(schema):
    import pyarrow as pa

    return [pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)]


def _collect_rows(df, table) -> list:
    """``df.collect()``'s Rows from ``table``, built like classic ``collect`` builds them."""
    from pyspark.sql.conversion import ArrowTableToRowsConversion

    as_bytes = df.sparkSession.conf.get("spark.sql.execution.pyspark.binaryAsBytes", "true")
    return ArrowTableToRowsConversion.convert(_spark_arrow(table, df), df.schema,
                                              binary_as_bytes=as_bytes == "true")


def _unhandled(schema) -> str | None:
    """Why a result of ``schema`` is not converted here (None: every type is handled)."""
    from pyspark.sql import types as t

    def bad(dt) -> str | None:
        if isinstance(dt, t.ArrayType):
            return bad(dt.elementType)
        if isinstance(dt, t.MapType):
            return bad(dt.keyType) or bad(dt.valueType)
        if isinstance(dt, t.StructType):
            return next((b for f in dt.fields if (b := bad(f.dataType))), None)
        return None if type(dt).__name__ in HANDLED_TYPES else dt.simpleString()

    found = bad(schema)
    return None if found is None else f"result type {found} is not converted by acceleration"


def _not_native(spark, df) -> str | None:
    """Why ``df``'s plan would fall back, found without running anything (None: native)."""
    from executor.errors import InternalError, UnsupportedError
    from executor.frontend import check_executable, to_ir

    try:
        check_executable(to_ir(spark, df))
    except UnsupportedError as err:
        return str(err)
    except InternalError as err:
        return f"executor internal error: {err}"
    return None


# -- write.parquet ------------------------------------------------------------------------

_writer_cls = None


def _writer_class():
    """A ``DataFrameWriter`` that remembers its settings, so that ``parquet`` can replay them on
    a DataFrame of the native result."""
    global _writer_cls
    if _writer_cls is not None:
        return _writer_cls
    from pyspark.sql.readwriter import DataFrameWriter

    def recording(name):
        base = getattr(DataFrameWriter, name)

        def method(self, *args, **kwargs):
            self._calls.append((name, args, kwargs))
            base(self, *args, **kwargs)
            return self

        method.__name__ = name
        method.__doc__ = base.__doc__
        return method

    class AcceleratedWriter(DataFrameWriter):
        def __init__(self, df):
            super().__init__(df)
            self._calls: list[tuple[str, tuple, dict]] = []

        def parquet(self, path, mode=None, partitionBy=None, compression=None):
            state = _state_of(self._df)
            if state is None:
                return DataFrameWriter.parquet(self, path, mode, partitionBy, compression)
            return _write_parquet(state, self, (path, mode, partitionBy, compression))

    for name in ("mode", "format", "option", "options", "partitionBy", "bucketBy", "sortBy",
                 "clusterBy"):
        setattr(AcceleratedWriter, name, recording(name))
    _writer_cls = AcceleratedWriter
    return _writer_cls


def _write_parquet(state: _Session, writer, args: tuple) -> None:
    """Native when the plan runs natively (checked before anything runs, so a fallback is the
    stock write, done once); the result is written by Spark's writer with the same settings."""
    from pyspark.sql.readwriter import DataFrameWriter

    df = writer._df
    spark = df.sparkSession
    with _recorded(state, "write.parquet") as outcome:
        outcome.reason = _policy(spark) or _unhandled(df.schema) or _not_native(spark, df)
        executed = None
        if outcome.reason is None:
            executed, outcome.reason = _execute(state, spark, df)
        if executed is None or not executed.native:
            _refuse_fallback(df, "write.parquet", outcome.reason)
        if executed is None:
            DataFrameWriter.parquet(writer, *args)
            return
        outcome.native = executed.native
        table = _spark_arrow(executed.table, df)
        replay = DataFrameWriter(spark.createDataFrame(table, schema=df.schema))
        for name, a, kw in writer._calls:
            getattr(DataFrameWriter, name)(replay, *a, **kw)
        DataFrameWriter.parquet(replay, *args)
        outcome.rows = table.num_rows
