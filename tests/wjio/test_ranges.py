"""Range planning: properties over random inputs (hypothesis) and the exact chunk ranges."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.conftest import parquet_bytes
from wjio.ranges import ByteRange, coalesce, column_chunk_range, plan_fetch, split

ranges = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 2_000)).map(
        lambda t: ByteRange(t[0], t[0] + t[1])
    ),
    max_size=40,
)


@given(ranges, st.integers(0, 500))
def test_coalesce_covers_exactly_and_respects_holes(rs, hole):
    out = coalesce(rs, hole)
    assert out == sorted(out)
    for a, b in itertools.pairwise(out):
        assert b.start - a.end > hole  # merged whenever the hole was small enough
    for r in rs:
        if r.size:
            assert any(m.contains(r) for m in out)
    # Never fetch more than the needed bytes plus the holes that were bridged.
    needed = sorted(r for r in rs if r.size)
    fetched = sum(m.size for m in out)
    union = sum(m.size for m in coalesce(needed, 0))
    assert union <= fetched <= union + hole * max(0, len(needed) - 1)


@given(st.integers(0, 10**9), st.integers(1, 10**8), st.integers(1, 10**7))
def test_split_pieces_are_contiguous_and_bounded(start, size, limit):
    assume(size // limit <= 1000)  # realistic plans; keeps each example fast
    r = ByteRange(start, start + size)
    pieces = split(r, limit)
    assert pieces[0].start == r.start and pieces[-1].end == r.end
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert all(p.size <= limit for p in pieces)
    assert len(pieces) == -(-size // limit)  # the fewest pieces
    if len(pieces) > 1:
        assert all(2 * p.size >= limit for p in pieces)  # each still worth its latency


def test_plan_fetch_merges_adjacent_and_splits_large():
    needed = [ByteRange(0, 100), ByteRange(100, 200), ByteRange(300, 10_300)]
    out = plan_fetch(needed, hole_size_limit=50, range_size_limit=4_000)
    assert out[0] == ByteRange(0, 200)
    assert sum(r.size for r in out[1:]) == 10_000 and len(out) == 4


def test_invalid_range_rejected():
    with pytest.raises(ValueError):
        ByteRange(10, 5)


@pytest.mark.parametrize("use_dictionary", [True, False])
def test_chunk_ranges_tile_the_data_region(use_dictionary):
    """Chunk ranges of a real file are disjoint, in bounds, and start right after the magic."""
    t = pa.table({"a": list(range(5000)), "b": [str(i % 10) for i in range(5000)]})
    data = parquet_bytes(t, row_group_size=1000, use_dictionary=use_dictionary)
    md = pq.read_metadata(pa.BufferReader(data))
    spans = sorted(
        column_chunk_range(md.row_group(r).column(c), len(data), md.created_by)
        for r in range(md.num_row_groups)
        for c in range(md.num_columns)
    )
    assert spans[0].start == 4
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start
    meta_len = int.from_bytes(data[-8:-4], "little")
    assert spans[-1].end <= len(data) - 8 - meta_len


def test_old_parquet_mr_files_get_dictionary_header_padding():
    t = pa.table({"a": list(range(10))})
    md = pq.read_metadata(pa.BufferReader(parquet_bytes(t)))
    col = md.row_group(0).column(0)
    normal = column_chunk_range(col, 10_000, md.created_by)
    padded = column_chunk_range(col, 10_000, "parquet-mr version 1.2.8 (build abc)")
    assert padded.end == normal.end + 100
