"""Deterministic row hashes of key columns, for hash partitioning.

Any process computes the same hash for the same typed value (no Python ``hash``, no seeds),
so both sides of a join, partitioned by different tasks, agree. Floats hash -0.0 as 0.0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_NULL = np.uint64(0x5BD1E9955BD1E995)
_PRIME = np.uint64(0x100000001B3)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit affects every output bit (a new array; the
    steps after the first run in place)."""
    h = h ^ (h >> np.uint64(30))
    shifted = np.empty_like(h)
    np.multiply(h, _M1, out=h)
    np.right_shift(h, np.uint64(27), out=shifted)
    np.bitwise_xor(h, shifted, out=h)
    np.multiply(h, _M2, out=h)
    np.right_shift(h, np.uint64(31), out=shifted)
    np.bitwise_xor(h, shifted, out=h)
    return h


def _string_hash(a: pa.Array) -> np.ndarray:
    offsets_t = np.int64 if pa.types.is_large_string(a.type) else np.int32
    offsets = np.frombuffer(a.buffers()[1], dtype=offsets_t)[a.offset:a.offset + len(a) + 1]
    offsets = offsets.astype(np.int64)
    data = a.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    out = np.zeros(len(a), dtype=np.uint64)
    nonempty = lengths > 0
    if nonempty.any():
        start = offsets[0]
        bytes_ = raw[start:offsets[-1]].astype(np.uint64)
        pos = np.arange(len(bytes_)) - np.repeat(offsets[:-1] - start, lengths)
        powers = np.cumprod(np.full(int(lengths.max()), _PRIME, dtype=np.uint64))
        terms = (bytes_ + np.uint64(1)) * powers[pos]
        out[nonempty] = np.add.reduceat(terms, (offsets[:-1] - start)[nonempty])
    return out + lengths.astype(np.uint64)


def column_hash(a: pa.Array) -> np.ndarray:
    """uint64 hash per value of ``a`` (nulls hash to a constant)."""
    t = a.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        h = _string_hash(a)
    elif pa.types.is_decimal128(t):
        words = np.frombuffer(a.buffers()[1], dtype=np.uint64)[2 * a.offset:2 * (a.offset + len(a))]
        words = words.reshape(-1, 2)
        h = _mix(words[:, 0]) ^ (words[:, 1] * _PRIME)
    elif pa.types.is_floating(t):
        f = pc.fill_null(pc.cast(a, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        f = np.where(f == 0.0, 0.0, f)  # -0.0 -> 0.0
        f = np.where(np.isnan(f), np.nan, f)
        h = f.view(np.uint64)
    elif pa.types.is_null(t):
        h = np.zeros(len(a), dtype=np.uint64)
    else:  # integers, bool, dates, timestamps
        ints = pc.cast(a.view(pa.int32()) if pa.types.is_date32(t) else a, pa.int64())
        h = pc.fill_null(ints, 0).to_numpy(zero_copy_only=False).view(np.uint64)
    h = _mix(h)
    if a.null_count:
        h = np.where(a.is_valid().to_numpy(zero_copy_only=False), h, _NULL)
    return h


def partition_ids(columns: list[pa.Array], num_partitions: int) -> np.ndarray:
    """The target partition (0..n-1) of each row, from its key columns."""
    acc = np.zeros(len(columns[0]), dtype=np.uint64)
    for col in columns:
        acc = _mix(acc * _PRIME + column_hash(col))
    if num_partitions & (num_partitions - 1) == 0:  # a power of two: the same as ``%``
        return (acc & np.uint64(num_partitions - 1)).astype(np.int64)
    return (acc % np.uint64(num_partitions)).astype(np.int64)
