"""Bytes of task outputs and manifests, and their checksums.

* A partition of a task's output is one Arrow IPC stream whose buffers Arrow compresses with
  the options' codec (:data:`CODECS`; zstd by default, see :data:`DEFAULT_CODEC`); the
  streams of all partitions lie back to back in one object. Each IPC message names its own
  compression, so a reader decodes any codec and a query written with one codec resumes
  with another. The batches a producer adds are written coalesced into batches of about
  :data:`COALESCE_BYTES` (see there).
* Manifests (plan, commit records, result manifest) are JSON; one larger than
  :data:`MANIFEST_COMPRESS_OVER` is stored as a zstd frame (the ``zstandard`` package), told
  apart from JSON by the frame's magic bytes, so keys do not change with the size.
* A small task output (or result) is carried inside its commit record (or manifest) instead
  of a data object (:func:`inline_text`, :func:`inline_slice`, :func:`inline_data`): base64 of
  the same bytes, so the record's offsets and checksums mean what they mean for an object.
* Checksums are SHA-256 (hex): in the standard library and ~0.9-1.5 GB/s here with the CPU's
  SHA extensions (BLAKE2b about half that; crc32c has no installed implementation and zlib's
  crc32 is too weak to stand for "this is the committed output"), so hashing costs a
  fraction of the compression it follows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pyarrow as pa
import zstandard

from checkpoint.errors import CorruptManifestError

CODECS = ("zstd", "lz4", "none")
"""Compressions of task outputs: Arrow IPC's zstd and LZ4 frame codecs, or none."""
DEFAULT_CODEC = "zstd"
"""Exchanged data is written once and read once: encode and decode CPU plus the cost of the
bytes moved is what a codec costs. On the exchanges of TPC-H SF1 q03/q05/q09/q18 (8 files
per table, 2 partitions, 95-300 MB of Arrow data per query; best of 3): zstd level 1 6-8x
at 0.5-0.7 GB/s encode and 0.7-1.3 GB/s decode; lz4 2.8-3.7x at 0.8-1.4 GB/s and 1.2-3.2
GB/s. lz4 saves ~0.3 s of CPU per 300 MB exchanged but moves 2.2x the bytes, and a byte
moved costs CPU too (moto's server ~5 ms/MB per PUT; the client hashes the body for SigV4
over plain HTTP): whole checkpointed runs of q05/q18 on moto took as much or more CPU
(client + server) with lz4 as with zstd, and ``none`` ~2x more. ``lz4`` suits a store whose
bytes are cheap (MinIO on a fast local network) when CPU is the bottleneck."""
ZSTD_LEVEL = 1
"""Arrow IPC zstd level of task outputs written with ``zstd``. Measured on a 256k-row TPC-H
lineitem-like batch (34 MB in memory; tests/checkpoint/test_codec.py::test_zstd_levels;
encode MB/s of raw data on one core of a loaded shared box, so absolute speeds vary ~2x,
their order does not): level 1 4.5x at 150-250 MB/s; level 2 4.5x at ~95; level 3 4.4x at
55-70; level 6 4.4x at 20-40; level 9 4.8x at 15-18. Decoding is 170-500 MB/s at every
level. Above level 1 the size gain is at most ~6% for 2-15x the CPU, and outputs are
written once and read once."""
COALESCE_BYTES = 4 * 1024 * 1024
"""A partition's stream is written in batches of about this many bytes of Arrow data: the
batches added to it are concatenated until they reach it. Arrow compresses each buffer of
each IPC message on its own (a fresh zstd context, its tables and headers per buffer), and a
hash-partitioned 64k-row batch leaves ~32k rows per partition (~256 KiB buffers). Measured
on 3M lineitem rows (orderkey, suppkey, extendedprice, discount; 72 MB per partition in 56
batches of 32k rows; zstd level 1, best of 5): encode 0.125 s as added, 0.098 s coalesced
to 128k rows, 0.097 s to 512k; decode 0.106 s vs 0.051-0.061 s; the same size. The copy
costs 0.004 s. A consumer's batches are then the coalesced ones."""
MANIFEST_COMPRESS_OVER = 64 * 1024
MANIFEST_ZSTD_LEVEL = 3
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def ipc_options(codec: str = DEFAULT_CODEC, level: int = ZSTD_LEVEL
                ) -> pa.ipc.IpcWriteOptions:
    """Arrow IPC write options compressing with ``codec`` (one of :data:`CODECS`; ``level``
    applies to zstd) on the writing thread: task outputs are encoded on the encode pool
    (:mod:`checkpoint.encoder`), one thread per sink, and Arrow's own pool on top of it cost
    ~20% more CPU for the same bytes (q05's 298 MB: 0.60 vs 0.50 s)."""
    if codec == "zstd":
        return pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=level),
                                      use_threads=False)
    if codec == "lz4":
        return pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
    if codec == "none":
        return pa.ipc.IpcWriteOptions(use_threads=False)
    raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")


def checksum(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class PartitionWriter:
    """Builds one partition's IPC stream batch by batch (the schema comes with the first).

    Batches are held until they add up to ``coalesce`` bytes of Arrow data and then written
    as one (:data:`COALESCE_BYTES`): at most ``coalesce`` bytes plus one batch are held."""

    def __init__(self, options: pa.ipc.IpcWriteOptions | None = None,
                 coalesce: int = COALESCE_BYTES) -> None:
        self._sink = pa.BufferOutputStream()
        self._options = options or ipc_options()
        self._coalesce = coalesce
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._held: list[pa.RecordBatch] = []
        self.held_bytes = 0
        """Bytes of Arrow data of the batches added and not yet written."""
        self.rows = 0

    def write(self, batch: pa.RecordBatch, size: int | None = None) -> None:
        """Add ``batch`` (``size``: its ``nbytes``, when the caller knows it)."""
        self._held.append(batch)
        self.held_bytes += batch.nbytes if size is None else size
        self.rows += batch.num_rows
        if self.held_bytes >= self._coalesce:
            self.flush()

    def flush(self) -> None:
        """Write the batches held, as one (``pa.ArrowInvalid`` if their schemas differ)."""
        if not self._held:
            return
        held, self._held, self.held_bytes = self._held, [], 0
        batch = held[0] if len(held) == 1 else pa.concat_batches(held)
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._sink, batch.schema, options=self._options)
        self._writer.write_batch(batch)

    def close(self) -> bytes:
        """The stream's bytes; empty when no batch was written (an empty partition)."""
        self.flush()
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


def inline_text(data: bytes) -> str:
    """``data`` (a task's encoded output) as the base64 text its commit record carries."""
    return base64.b64encode(data).decode("ascii")


def inline_data(text: str) -> bytes:
    """The bytes the base64 ``text`` of a record holds; ``binascii.Error`` if it is not
    base64."""
    return base64.b64decode(text, validate=True)


def inline_size(text: str) -> int | None:
    """Bytes the base64 ``text`` decodes to, None if its length or padding is not base64's
    (its characters are checked when it is decoded)."""
    if len(text) % 4:
        return None
    pad = len(text) - len(text.rstrip("="))
    return None if pad > 2 else len(text) // 4 * 3 - pad


def inline_slice(text: str, start: int, length: int) -> bytes:
    """Bytes ``[start, start + length)`` of the output held as base64 ``text``, decoding only
    the 4-character groups they lie in (a consumer wants one partition of it); shorter if
    ``text`` ends first, ``binascii.Error`` if a character is not base64."""
    if length <= 0:
        return b""
    first, last = start // 3, -(-(start + length) // 3)
    skip = start - 3 * first
    return base64.b64decode(text[4 * first:4 * last], validate=True)[skip:skip + length]


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
