"""Byte ranges: which bytes of an object a scan needs, merged and split for fetching.

Pure functions; their invariants are checked on every call (not only in debug): a fetch plan
that misses a byte would turn into a read outside the fetched ranges, which is an error.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

# parquet-mr <= 1.2.8 left the dictionary page header out of total_compressed_size
# (PARQUET-816); Arrow pads reads of such files by up to 100 bytes, so we must fetch them too.
_PARQUET_816_PADDING = 100
_PARQUET_MR_VERSION = re.compile(r"parquet-mr version (\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of one object."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range [{self.start}, {self.end})")

    @property
    def size(self) -> int:
        return self.end - self.start

    def contains(self, other: ByteRange) -> bool:
        return self.start <= other.start and other.end <= self.end


def column_chunk_range(column, file_size: int, created_by: str | None) -> ByteRange:
    """The bytes Arrow reads for one column chunk (``pq.ColumnChunkMetaData``)."""
    start = column.data_page_offset
    dict_offset = column.dictionary_page_offset
    if column.has_dictionary_page and dict_offset is not None and 0 < dict_offset < start:
        start = dict_offset
    end = start + column.total_compressed_size
    if created_by and _needs_parquet_816_padding(created_by):
        end = min(file_size, end + _PARQUET_816_PADDING)
    return ByteRange(start, end)


def _needs_parquet_816_padding(created_by: str) -> bool:
    m = _PARQUET_MR_VERSION.search(created_by)
    return bool(m) and tuple(int(x) for x in m.groups()) < (1, 2, 9)


def coalesce(ranges: Iterable[ByteRange], hole_size_limit: int) -> list[ByteRange]:
    """Merge ranges that overlap or are separated by at most ``hole_size_limit`` bytes."""
    ordered = sorted(r for r in ranges if r.size)
    out: list[ByteRange] = []
    for r in ordered:
        if out and r.start - out[-1].end <= hole_size_limit:
            if r.end > out[-1].end:
                out[-1] = ByteRange(out[-1].start, r.end)
        else:
            out.append(r)
    _check_cover(ordered, out)
    return out


def split(r: ByteRange, range_size_limit: int) -> list[ByteRange]:
    """Cut a long range into the fewest near-equal pieces of at most ``range_size_limit``
    bytes. Each piece is then larger than half the limit, so it still amortises its latency."""
    if r.size <= range_size_limit:
        return [r]
    pieces = -(-r.size // range_size_limit)
    bounds = [r.start + (i * r.size) // pieces for i in range(pieces + 1)]
    out = [ByteRange(a, b) for a, b in itertools.pairwise(bounds)]
    if any(p.size > range_size_limit for p in out):
        raise AssertionError(f"split of {r} into {pieces} pieces produced {out}")
    return out


def plan_fetch(
    needed: Iterable[ByteRange], *, hole_size_limit: int, range_size_limit: int
) -> list[ByteRange]:
    """Requests for one row group: coalesced, then split, in offset order."""
    merged = coalesce(needed, hole_size_limit)
    return [piece for r in merged for piece in split(r, range_size_limit)]


def _check_cover(inputs: list[ByteRange], merged: list[ByteRange]) -> None:
    for a, b in itertools.pairwise(merged):
        if not a.end < b.start:
            raise AssertionError(f"coalesced ranges overlap or touch: {a}, {b}")
    i = 0
    for r in inputs:
        while i < len(merged) and merged[i].end < r.end:
            i += 1
        if i == len(merged) or not merged[i].contains(r):
            raise AssertionError(f"range {r} is not covered by the coalesced plan")
