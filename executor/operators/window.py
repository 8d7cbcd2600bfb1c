"""``WindowExec``: Spark's window functions over one task's input.

A window sees its whole partition, so the task's input is materialised (``distribute``
hash-partitions it by the partition keys first) and sorted once by (partition keys, order
keys). Everything after is numpy over the sorted rows:

* partition and peer-group starts are flags where a key differs from the previous row (nulls
  equal each other and NaN equals NaN, as in Spark's grouping and ordering); ranks, ``ntile``
  and ``lag``/``lead`` are arithmetic on those boundaries;
* an aggregate's frame is a row range ``[lo, hi)`` per row (RANGE offsets are resolved by
  binary search over the order key);
* count, and sum/avg of integers and decimals, are differences of prefix sums in integer
  arithmetic (int64 when the bounds allow, Python integers otherwise): exact for any frame;
* a float sum depends on the order of its additions, so it is accumulated in Spark's order:
  running per partition for frames starting at the partition start (Spark adds row by row),
  else term by term from each frame's first row (Spark recomputes each such frame), for
  frames of at most ``MAX_TERMS`` rows; wider ones fall back (at plan time when the width is
  fixed, at run time when it depends on the data);
* min/max map values to dense ranks shifted per partition, so one cumulative min/max answers
  frames anchored at either partition end and a sparse table answers sliding ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import ArithmeticOverflowError, NumericOutOfRangeError, UnsupportedError
from executor.eval import decimals, evaluate
from executor.ir import aggregates as agg
from executor.ir import relations as rel
from executor.ir import windows as win
from executor.ir.expressions import Expr
from executor.operators.base import Operator, batches_of, physical_schema, to_table
from executor.operators.sort import sort_indices

I64 = 2**63
MAX_TERMS = 64
"""Most rows per frame whose float sum is added term by term (frames not starting at the
partition start: Spark re-adds each such frame row by row, in window order)."""


def _float_sum_supported(frame: win.WindowFrame) -> bool:
    """False for frames known at plan time to be wider than :data:`MAX_TERMS` rows; the width
    of RANGE offset frames and of frames reaching the partition end is checked on the data."""
    if frame.lower is None or frame.kind is win.FrameKind.RANGE or frame.upper is None:
        return True
    return frame.upper - frame.lower + 1 <= MAX_TERMS


class WindowExec(Operator):
    def __init__(self, node: rel.Window, child: Operator) -> None:
        self.children = (child,)
        self.node = node
        self.schema = physical_schema(node.schema)
        for alias in node.functions:
            _check_supported(alias.child)

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        table = to_table(self.children[0].execute(partition, ctx), self.children[0].schema)
        if table.num_rows == 0:
            return
        keys = tuple(rel.SortKey(e) for e in self.node.partition_by) + self.node.order_by
        if keys:
            table = table.take(sort_indices(table, keys))
        batch = table.combine_chunks().to_batches()[0]
        rows = _Rows.of(batch, self.node)
        columns = [_compute(alias.child, rows) for alias in self.node.functions]
        out = pa.RecordBatch.from_arrays(batch.columns + columns, schema=self.schema)
        yield from batches_of(pa.Table.from_batches([out]), self.schema, ctx.batch_size)


def _check_supported(w: win.WindowExpr) -> None:
    fn = w.function
    if not w.is_aggregate:
        return
    if not isinstance(fn, agg.Sum | agg.Avg | agg.Count | agg.Min | agg.Max):
        raise UnsupportedError(type(fn).__name__, "aggregate function over a window")
    if isinstance(fn, agg.Sum | agg.Avg) and pa.types.is_floating(fn.child.dtype) \
            and not _float_sum_supported(w.frame):
        raise UnsupportedError("Window", _too_wide(fn, w.frame, w.frame.upper - w.frame.lower + 1))


def _too_wide(fn: agg.Sum | agg.Avg, frame: win.WindowFrame, width: int) -> str:
    return (f"{type(fn).__name__.lower()} of {fn.child.dtype} over {frame.kind.value} "
            f"{frame.lower}..{frame.upper} (frames of {width} rows): Spark re-adds each such "
            f"frame row by row, done natively only up to {MAX_TERMS} rows per frame")


# -- row structure ------------------------------------------------------------------------


def _differs(values: pa.Array) -> np.ndarray:
    """``values[i] != values[i - 1]`` for i >= 1, nulls equal to nulls and NaN to NaN."""
    cur, prev = values.slice(1), values.slice(0, len(values) - 1)
    same = pc.fill_null(pc.equal(cur, prev), False)
    same = pc.or_(same, pc.and_(pc.is_null(cur), pc.is_null(prev)))
    if pa.types.is_floating(values.type):
        nan = pc.and_(pc.is_nan(cur), pc.is_nan(prev))
        same = pc.or_(same, pc.fill_null(nan, False))
    return ~same.to_numpy(zero_copy_only=False)


def _segments(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: segment number, first row and end (exclusive) of its segment."""
    n = len(starts)
    seg = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    ends = np.append(first[1:], n)
    return seg, first[seg], ends[seg]


@dataclass
class _Rows:
    """The sorted rows of one task and their partition and peer-group boundaries."""

    batch: pa.RecordBatch
    node: rel.Window
    index: np.ndarray
    part: np.ndarray
    part_start: np.ndarray
    part_end: np.ndarray
    peer_first: np.ndarray
    peer_start: np.ndarray
    peer_end: np.ndarray

    @classmethod
    def of(cls, batch: pa.RecordBatch, node: rel.Window) -> _Rows:
        n = batch.num_rows
        part_first = np.zeros(n, dtype=bool)
        part_first[0] = True
        for e in node.partition_by:
            part_first[1:] |= _differs(evaluate(e, batch))
        peer_first = part_first.copy()
        for k in node.order_by:
            peer_first[1:] |= _differs(evaluate(k.expr, batch))
        part, part_start, part_end = _segments(part_first)
        _, peer_start, peer_end = _segments(peer_first)
        return cls(batch, node, np.arange(n, dtype=np.int64), part, part_start, part_end,
                   peer_first, peer_start, peer_end)

    @property
    def n(self) -> int:
        return self.batch.num_rows

    def values(self, e: Expr) -> pa.Array:
        return evaluate(e, self.batch)

    # -- frames ---------------------------------------------------------------------------

    def frame(self, frame: win.WindowFrame) -> tuple[np.ndarray, np.ndarray]:
        """``[lo, hi)`` row ranges of ``frame`` per row (``hi >= lo``; equal when empty)."""
        if frame.kind is win.FrameKind.ROWS:
            lo = self.part_start if frame.lower is None else np.clip(
                self.index + frame.lower, self.part_start, self.part_end)
            hi = self.part_end if frame.upper is None else np.clip(
                self.index + frame.upper + 1, self.part_start, self.part_end)
        else:
            lo = self._range_bound(frame.lower, self.part_start, self.peer_start, "left")
            hi = self._range_bound(frame.upper, self.part_end, self.peer_end, "right")
        return lo, np.maximum(hi, lo)

    def _range_bound(self, offset: int | None, unbounded: np.ndarray, peers: np.ndarray,
                     side: str) -> np.ndarray:
        """First row (``left``: the lower bound) or end (``right``) of the rows whose order
        key lies within ``offset`` of the current row's, in window order. A null key's frame
        side is its null peers (Spark compares key + offset, null for a null key)."""
        if offset is None:
            return unbounded
        if offset == 0:
            return peers
        key = self.node.order_by[0]
        values = self.values(key.expr)
        null = values.is_null().to_numpy(zero_copy_only=False)
        v = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
        bound = max(int(v.max()), -int(v.min())) + abs(offset)
        if bound >= I64 // 2:
            raise UnsupportedError("Window", f"RANGE offset {offset} on order key values up "
                                   f"to {bound}: beyond exact int64 arithmetic")
        if not key.ascending:  # order space: window order is ascending in -key
            v = -v
        distinct = np.unique(v[~null])
        # Rows as (partition, rank of key) packed into one sorted int64: nulls rank before
        # (NULLS FIRST) or after every value of their partition.
        width = len(distinct) + 2
        rank = np.searchsorted(distinct, v) + 1
        rank[null] = 0 if key.nulls_first else len(distinct) + 1
        packed = self.part * width + rank
        if side == "left":
            target = np.searchsorted(distinct, v + offset, "left")
        else:
            target = np.searchsorted(distinct, v + offset, "right")
        out = np.searchsorted(packed, self.part * width + target + 1, "left")
        return np.where(null, peers, out)


# -- functions ----------------------------------------------------------------------------


def _compute(w: win.WindowExpr, rows: _Rows) -> pa.Array:
    fn = w.function
    if isinstance(fn, win.RankingFunction):
        return _ranking(fn, rows)
    if isinstance(fn, win.OffsetValue):
        return _offset_value(fn, rows)
    lo, hi = rows.frame(w.frame)
    if isinstance(fn, agg.Count):
        valid = np.ones(rows.n, dtype=bool)
        for a in fn.args:
            valid &= rows.values(a).is_valid().to_numpy(zero_copy_only=False)
        return pa.array(_frame_count(valid, lo, hi), pa.int64())
    if isinstance(fn, agg.Min | agg.Max):
        return _extreme(rows.values(fn.child), rows, lo, hi, isinstance(fn, agg.Max))
    return _sum_or_avg(fn, w.frame, rows, lo, hi)


def _ranking(fn: win.RankingFunction, rows: _Rows) -> pa.Array:
    size = rows.part_end - rows.part_start
    rank = rows.peer_start - rows.part_start + 1
    if isinstance(fn, win.RowNumber):
        out = rows.index - rows.part_start + 1
    elif isinstance(fn, win.Rank):
        out = rank
    elif isinstance(fn, win.DenseRank):
        groups = np.cumsum(rows.peer_first)
        out = groups - groups[rows.part_start] + 1
    elif isinstance(fn, win.PercentRank):
        denominator = np.maximum(size - 1, 1).astype(np.float64)
        return pa.array(np.where(size > 1, (rank - 1) / denominator, 0.0), pa.float64())
    elif isinstance(fn, win.CumeDist):
        return pa.array((rows.peer_end - rows.part_start) / size.astype(np.float64),
                        pa.float64())
    elif isinstance(fn, win.NTile):
        r = rows.index - rows.part_start
        small, extra = size // fn.buckets, size % fn.buckets
        in_big = extra * (small + 1)  # the first `extra` buckets hold one row more
        out = np.where(r < in_big, r // (small + 1),
                       extra + (r - in_big) // np.maximum(small, 1)) + 1
    else:
        raise UnsupportedError(type(fn).__name__, "ranking function")
    return pa.array(out.astype(np.int32), pa.int32())


def _offset_value(fn: win.OffsetValue, rows: _Rows) -> pa.Array:
    target = rows.index + fn.offset
    inside = (target >= rows.part_start) & (target < rows.part_end)
    values = rows.values(fn.input).take(pa.array(np.where(inside, target, 0)))
    if fn.default is None:
        default = pa.nulls(rows.n, fn.dtype)
    else:
        default = rows.values(fn.default)
    return pc.if_else(pa.array(inside), values, default)


def _frame_count(valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    prefix = np.concatenate(([0], np.cumsum(valid, dtype=np.int64)))
    return prefix[hi] - prefix[lo]


def _prefix_sums(u: np.ndarray) -> np.ndarray:
    """Prefix sums of integers ``u`` (int64 or Python ints), exact: int64 while the row
    count times the largest magnitude stays below 2**63, Python integers beyond."""
    n = len(u)
    big = u.dtype == object or n * max(int(u.max()), -int(u.min())) >= I64
    if big:
        return np.concatenate(([0], np.cumsum(u.astype(object)))).astype(object)
    return np.concatenate(([0], np.cumsum(u, dtype=np.int64)))


def _unscaled(values: pa.Array) -> np.ndarray:
    """Unscaled integers of a decimal128 array (nulls as 0): int64 when they fit, else
    Python ints."""
    n = len(values)
    words = np.frombuffer(values.buffers()[1], dtype=np.int64)[
        2 * values.offset:2 * (values.offset + n)]
    low, high = words[0::2], words[1::2]  # little-endian two's complement halves
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    low, high = np.where(valid, low, 0), np.where(valid, high, 0)
    if np.array_equal(high, low >> 63):
        return low
    return high.astype(object) * 2**64 + low.view(np.uint64).astype(object)


def _decimal_from_unscaled(u: np.ndarray, valid: np.ndarray, out: pa.Decimal128Type,
                           ansi: bool, what: str) -> pa.Array:
    """Decimal ``out`` from unscaled integers ``u`` (int64 or Python ints) at ``out.scale``,
    checking its precision (ANSI raises, else null)."""
    limit = 10**out.precision
    if u.dtype == object:
        fits = np.array([-limit < x < limit for x in u], dtype=bool)
    else:
        fits = np.abs(u) < limit if limit < I64 else np.ones(len(u), dtype=bool)
    bad = valid & ~fits
    if bad.any():
        if ansi:
            value = int(u[np.flatnonzero(bad)[0]])
            raise NumericOutOfRangeError(f"{value}E-{out.scale} cannot be represented as "
                                         f"{out} ({what})")
        valid = valid & fits
    if u.dtype == object:
        u = np.where(valid, u, 0)
        low = np.array([x & (2**64 - 1) for x in u], dtype=np.uint64).view(np.int64)
        high = np.array([x >> 64 for x in u], dtype=np.int64)
    else:
        low = np.where(valid, u, 0)
        high = low >> 63
    words = np.column_stack((low, high)).reshape(-1)
    # A boolean array's data buffer is a bitmap packed as Arrow's validity bitmaps are.
    mask = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(out, len(u), [mask, pa.py_buffer(words.tobytes())])


def _sum_or_avg(fn: agg.Sum | agg.Avg, frame: win.WindowFrame, rows: _Rows,
                lo: np.ndarray, hi: np.ndarray) -> pa.Array:
    values = rows.values(fn.child)
    t = values.type
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    count = _frame_count(valid, lo, hi)
    has = count > 0
    if pa.types.is_floating(t):
        x = pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        total = _float_frame_sum(fn, x, frame, rows, lo, hi)
        if isinstance(fn, agg.Avg):
            total = total / np.maximum(count, 1)
        return pa.array(total, pa.float64(), mask=~has)
    if pa.types.is_integer(t):
        u = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
        prefix = _prefix_sums(u)
        total = prefix[hi] - prefix[lo]
        if isinstance(fn, agg.Avg):
            # Spark averages integers in double, adding row by row: exact (so equal to the
            # integer sum) while every partial sum stays below 2**53.
            if len(u) * max(int(u.max()), -int(u.min())) >= 2**53:
                raise UnsupportedError("Window", "avg of integers whose double partial sums "
                                       "could round (beyond 2**53)")
            avg = total.astype(np.float64) / np.maximum(count, 1)
            return pa.array(avg, pa.float64(), mask=~has)
        if total.dtype == object:
            over = np.array([not -I64 <= x < I64 for x in total], dtype=bool) & has
            if over.any():
                if fn.ansi:
                    raise ArithmeticOverflowError("sum of bigint overflowed")
                total = np.array([(x + I64) % 2**64 - I64 for x in total], dtype=np.int64)
            total = total.astype(np.int64)
        return pa.array(total, pa.int64(), mask=~has)
    # decimals: exact sums of unscaled integers at the input's scale (= the sum's scale)
    prefix = _prefix_sums(_unscaled(values))
    total = _decimal_from_unscaled(prefix[hi] - prefix[lo], has, agg.Sum(fn.child).dtype,
                                   fn.ansi, "sum")
    if isinstance(fn, agg.Sum):
        return total
    # Spark: If(count = 0, null, sum / cast(count as decimal(20, 0))) at avg's type
    counts = pa.array(count, pa.int64(), mask=~has)
    return decimals.divide(total, pc.cast(counts, pa.decimal128(20, 0)), fn.dtype, fn.ansi)


def _float_frame_sum(fn: agg.Sum | agg.Avg, x: np.ndarray, frame: win.WindowFrame,
                     rows: _Rows, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Frame sums of doubles added in Spark's order, starting from 0.0 (so -0.0 sums to
    0.0 as in Spark): running sums for frames from the partition start (Spark adds row by
    row), else each frame's rows one by one from its first."""
    if frame.lower is None:
        total = _running_sums(x, rows)[np.maximum(hi - 1, 0)] + 0.0
        return np.where(hi > lo, total, 0.0)
    width = int((hi - lo).max())
    if width > MAX_TERMS:
        raise UnsupportedError("Window", _too_wide(fn, frame, width))
    total = np.zeros_like(x)
    for k in range(width):
        at = lo + k
        total = np.where(at < hi, total + x[np.minimum(at, rows.n - 1)], total)
    return total


def _running_sums(x: np.ndarray, rows: _Rows) -> np.ndarray:
    """Per row, the sum of its partition's values up to it, added in order: one cumsum per
    partition, or one vector step per position when partitions are many and short (numpy
    calls: the smaller of the two counts)."""
    starts = np.flatnonzero(rows.index == rows.part_start)
    pos = rows.index - rows.part_start
    longest = int(pos.max()) + 1
    running = x.copy()
    if len(starts) <= longest:
        for s, e in zip(starts, np.append(starts[1:], rows.n), strict=True):
            running[s:e] = np.cumsum(x[s:e])
        return running
    by_pos = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[by_pos], np.arange(longest + 1))
    for j in range(1, longest):
        at = by_pos[bounds[j]:bounds[j + 1]]
        running[at] = running[at - 1] + x[at]
    return running


def _extreme(values: pa.Array, rows: _Rows, lo: np.ndarray, hi: np.ndarray,
             is_max: bool) -> pa.Array:
    """min/max over ``[lo, hi)`` (nulls skipped, NaN the largest float)."""
    # Nulls rank last (the default placement); NaN ranks above every number, as in Spark.
    dense = pc.rank(values, sort_keys="ascending", tiebreaker="dense").to_numpy(
        zero_copy_only=False).astype(np.int64)
    null = values.is_null().to_numpy(zero_copy_only=False)
    top = int(dense[~null].max()) if (~null).any() else 0
    # Codes: values 1..top in order; a null is worse than every value for this extreme.
    codes = np.where(null, 0 if is_max else top + 1, dense)
    width = top + 2
    pick = np.maximum if is_max else np.minimum
    sign = 1 if is_max else -1
    empty = hi <= lo
    best = np.empty(rows.n, dtype=np.int64)
    prefix = lo == rows.part_start
    suffix = ~prefix & (hi == rows.part_end)
    middle = ~prefix & ~suffix & ~empty
    if prefix.any():  # shifted so earlier partitions never win: one accumulate for all
        shifted = codes + sign * rows.part * width
        acc = pick.accumulate(shifted) - sign * rows.part * width
        best[prefix] = acc[np.maximum(hi - 1, 0)][prefix]
    if suffix.any():
        shifted = codes - sign * rows.part * width
        acc = pick.accumulate(shifted[::-1])[::-1] + sign * rows.part * width
        best[suffix] = acc[np.minimum(lo, rows.n - 1)][suffix]
    if middle.any():
        best[middle] = _sparse_table_query(codes, lo[middle], hi[middle], pick)
    none = empty | (best == (0 if is_max else top + 1))
    holder = np.zeros(width, dtype=np.int64)
    holder[codes] = rows.index  # a row holding each code
    taken = values.take(pa.array(holder[np.where(none, codes[0], best)]))
    return pc.if_else(pa.array(none), pa.nulls(rows.n, values.type), taken)


def _sparse_table_query(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, pick) -> np.ndarray:
    """``pick`` over ``codes[lo:hi]`` per query (non-empty ranges): level k of the table
    holds ``pick`` over ``codes[i : i + 2**k]``; a range is two overlapping blocks."""
    width = hi - lo
    levels = [codes]
    while (1 << len(levels)) <= int(width.max()):
        prev, step = levels[-1], 1 << (len(levels) - 1)
        levels.append(pick(prev[:-step], prev[step:]) if len(prev) > step else prev[:0])
    k = np.floor(np.log2(width)).astype(np.int64)
    out = np.empty(len(lo), dtype=np.int64)
    for level in np.unique(k):
        sel = k == level
        table = levels[level]
        out[sel] = pick(table[lo[sel]], table[hi[sel] - (1 << level)])
    return out
