"""Bytes of task outputs and manifests, and their checksums.

* A partition of a task's output is one Arrow IPC stream whose buffers Arrow compresses with
  zstd (:data:`ZSTD_LEVEL`); the streams of all partitions lie back to back in one object.
* Manifests (plan, commit records, result manifest) are JSON; one larger than
  :data:`MANIFEST_COMPRESS_OVER` is stored as a zstd frame (the ``zstandard`` package), told
  apart from JSON by the frame's magic bytes, so keys do not change with the size.
* Checksums are SHA-256 (hex): in the standard library and ~0.9-1.5 GB/s here with the CPU's
  SHA extensions (BLAKE2b about half that; crc32c has no installed implementation and zlib's
  crc32 is too weak to stand for "this is the committed output"), so hashing costs a
  fraction of the zstd compression it follows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import zstandard

from checkpoint.errors import CorruptManifestError

ZSTD_LEVEL = 1
"""Arrow IPC zstd level of task outputs. Measured on a 256k-row TPC-H lineitem-like batch
(34 MB in memory; tests/checkpoint/test_codec.py::test_zstd_levels; encode MB/s of raw
data on one core of a loaded shared box, so absolute speeds vary ~2x, their order does not):
level 1 4.5x at 150-250 MB/s; level 2 4.5x at ~95; level 3 4.4x at 55-70; level 6 4.4x at
20-40; level 9 4.8x at 15-18. Decoding is 170-500 MB/s at every level. Above level 1 the
size gain is at most ~6% for 2-15x the CPU, and outputs are written once and read once."""
MANIFEST_COMPRESS_OVER = 64 * 1024
MANIFEST_ZSTD_LEVEL = 3
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def checksum(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class PartitionWriter:
    """Builds one partition's IPC stream batch by batch (the schema comes with the first)."""

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self._sink = pa.BufferOutputStream()
        self._options = pa.ipc.IpcWriteOptions(
            compression=pa.Codec("zstd", compression_level=level))
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._sink, batch.schema, options=self._options)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> bytes:
        """The stream's bytes; empty when no batch was written (an empty partition)."""
        if self._writer is None:
            return b""
        self._writer.close()
        return self._sink.getvalue().to_pybytes()


def decode_partition(data: bytes) -> list[pa.RecordBatch]:
    """The batches of one partition's stream (``pa.ArrowInvalid`` or ``OSError`` if malformed or
    cut short)."""
    if not data:
        return []
    return list(pa.ipc.open_stream(data))


def dump_manifest(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    if len(text) > MANIFEST_COMPRESS_OVER:
        return zstandard.ZstdCompressor(level=MANIFEST_ZSTD_LEVEL).compress(text)
    return text


def load_manifest(data: bytes, where: str) -> dict[str, Any]:
    """The manifest in ``data`` (JSON or a zstd frame of JSON); ``where`` names the object."""
    try:
        if data[:4] == _ZSTD_MAGIC:
            data = zstandard.ZstdDecompressor().decompress(data)
        obj = json.loads(data)
    except (zstandard.ZstdError, ValueError) as err:
        raise CorruptManifestError(f"{where}: not a readable manifest ({err})",
                                   uri=where) from None
    if not isinstance(obj, dict):
        raise CorruptManifestError(f"{where}: manifest is not a JSON object", uri=where)
    return obj
