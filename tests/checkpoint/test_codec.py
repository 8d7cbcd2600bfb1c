"""Task output and manifest encodings, and the measurements behind the default codec and
the zstd level."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pytest

from checkpoint.codec import (
    CODECS,
    MANIFEST_COMPRESS_OVER,
    PartitionWriter,
    decode_partition,
    dump_manifest,
    inline_size,
    inline_slice,
    inline_text,
    ipc_options,
    load_manifest,
)
from checkpoint.errors import CorruptManifestError


def _cents(values: np.ndarray) -> pa.Array:
    """decimal(15, 2) holding ``values`` / 100 (little-endian 128-bit, values >= 0)."""
    words = np.zeros((len(values), 2), np.int64)
    words[:, 0] = values
    return pa.Array.from_buffers(pa.decimal128(15, 2), len(values),
                                 [None, pa.py_buffer(words.tobytes())])


def lineitem(n: int, seed: int = 0) -> pa.RecordBatch:
    """A TPC-H lineitem-like batch (same column types and value distributions as dbgen's)."""
    rng = np.random.default_rng(seed)
    words = np.array("furiously quickly carefully blithely final ironic regular express "
                     "pending special deposits requests accounts packages".split())
    comments = [" ".join(w) for w in words[rng.integers(0, len(words), (n, 4))]]
    base = dt.date(1992, 1, 1).toordinal()
    return pa.record_batch({
        "l_orderkey": pa.array(np.sort(rng.integers(1, n // 4 + 2, n))),
        "l_partkey": pa.array(rng.integers(1, 200_000, n)),
        "l_suppkey": pa.array(rng.integers(1, 10_000, n)),
        "l_linenumber": pa.array(rng.integers(1, 8, n).astype(np.int32)),
        "l_quantity": _cents(rng.integers(100, 5100, n)),
        "l_extendedprice": _cents(rng.integers(90_000, 10_500_000, n)),
        "l_discount": _cents(rng.integers(0, 11, n)),
        "l_returnflag": pa.array(rng.choice(["A", "N", "R"], n)),
        "l_shipdate": pa.array(rng.integers(base, base + 2500, n) - 719163, pa.int32()).cast(
            pa.date32()),
        "l_shipmode": pa.array(rng.choice(["AIR", "MAIL", "RAIL", "SHIP", "TRUCK"], n)),
        "l_comment": pa.array(comments),
    })


def _encode(batches: list[pa.RecordBatch], codec: str = "zstd", level: int = 1) -> bytes:
    w = PartitionWriter(ipc_options(codec, level))
    for b in batches:
        w.write(b)
    return w.close()


@pytest.mark.parametrize("codec", CODECS)
def test_partition_round_trip_and_empty_partition(codec):
    batches = [lineitem(1000, s) for s in range(3)]
    data = _encode(batches, codec)
    assert pa.Table.from_batches(decode_partition(data)).equals(pa.Table.from_batches(batches))
    assert _encode([], codec) == b"" and decode_partition(b"") == []
    with pytest.raises((pa.ArrowInvalid, OSError)):
        decode_partition(data[: len(data) // 2])


def test_codecs_compress_as_named_and_unknown_codec_is_refused():
    batch = lineitem(20_000)
    sizes = {codec: len(_encode([batch], codec)) for codec in CODECS}
    # Each IPC message names its compression; decoding needs no option (pyarrow reads it).
    assert sizes["none"] > batch.nbytes * 0.9
    assert sizes["zstd"] < sizes["lz4"] < sizes["none"] / 2
    with pytest.raises(ValueError, match="codec must be one of zstd, lz4, none, got 'gzip'"):
        ipc_options("gzip")


def _round_trip(batch: pa.RecordBatch, *codec) -> tuple[int, float, float, float]:
    """Encode ``batch`` with ``codec`` (and level), decode it back and check it is unchanged:
    the encoded size, the size ratio, and encode and decode MB/s of the in-memory bytes."""
    raw = batch.nbytes
    t0 = time.perf_counter()
    data = _encode([batch], *codec)
    t1 = time.perf_counter()
    back = decode_partition(data)
    t2 = time.perf_counter()
    assert pa.Table.from_batches(back).equals(pa.Table.from_batches([batch]))
    return len(data), raw / len(data), raw / (t1 - t0) / 1e6, raw / (t2 - t1) / 1e6


def test_codecs(capsys):
    """The measurement behind DEFAULT_CODEC (run with -s to see it): size ratio and encode /
    decode MB/s of each codec's Arrow IPC stream on a 256k-row lineitem-like batch."""
    batch = lineitem(256 * 1024)
    raw = batch.nbytes
    rows = [(codec, *_round_trip(batch, codec)[1:]) for codec in CODECS]
    with capsys.disabled():
        print(f"\nArrow IPC codecs on {batch.num_rows} lineitem rows, {raw / 1e6:.1f} MB in "
              f"memory:")
        for codec, ratio, enc, dec in rows:
            print(f"  {codec:5s}: ratio {ratio:.2f}x, encode {enc:.0f} MB/s, "
                  f"decode {dec:.0f} MB/s")


def test_zstd_levels(capsys):
    """The measurement behind ZSTD_LEVEL (run with -s to see it): size ratio and encode/decode
    MB/s of the Arrow IPC stream at several levels, on a 256k-row lineitem-like batch."""
    batch = lineitem(256 * 1024)
    raw = batch.nbytes
    rows = []
    for level in (1, 3, 6, 9):
        size, ratio, enc, dec = _round_trip(batch, "zstd", level)
        assert size < raw
        rows.append((level, ratio, enc, dec))
    with capsys.disabled():
        print(f"\nArrow IPC zstd on {batch.num_rows} lineitem rows, {raw / 1e6:.1f} MB in "
              f"memory:")
        for level, ratio, enc, dec in rows:
            print(f"  level {level}: ratio {ratio:.2f}x, encode {enc:.0f} MB/s, "
                  f"decode {dec:.0f} MB/s")


def test_manifests_small_as_json_large_as_zstd():
    small = {"a": 1, "b": [1, 2]}
    assert dump_manifest(small).startswith(b"{") and load_manifest(dump_manifest(small), "x") \
        == small
    large = {"inputs": [{"uri": f"s3://b/t/part-{i:05d}.parquet", "size": i}
                        for i in range(3000)]}
    data = dump_manifest(large)
    assert not data.startswith(b"{") and len(data) < MANIFEST_COMPRESS_OVER
    assert load_manifest(data, "x") == large


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"\x28\xb5\x2f\xfd garbage"])
def test_bad_manifests_are_corrupt(data):
    with pytest.raises(CorruptManifestError, match=r"s3://b/q/plan\.json"):
        load_manifest(data, "s3://b/q/plan.json")


def test_inline_slices_equal_the_bytes_python_decodes():
    """Every slice of an inline output decodes to the same bytes as base64 decoding it whole
    (the standard library's decoder is the reference); sizes follow the padding."""
    rng = np.random.default_rng(4)
    for n in (0, 1, 2, 3, 4, 5, 31, 100):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        text = inline_text(data)
        assert base64.b64decode(text) == data and inline_size(text) == n
        for start in range(n + 1):
            for length in range(n - start + 1):
                assert inline_slice(text, start, length) == data[start:start + length]
    assert inline_size("abc") is None and inline_size("a===") is None
    assert inline_slice(inline_text(b"abcdef"), 4, 9) == b"ef"      # the text ends first
    with pytest.raises(binascii.Error):
        inline_slice("ab!d", 0, 2)
