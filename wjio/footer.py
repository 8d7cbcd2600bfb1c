"""Reading and parsing Parquet footers: one speculative suffix GET, a second only if needed.

A Parquet file ends with ``<FileMetaData (thrift)> <4-byte little-endian length> PAR1``. We
read the last ``footer_read_size`` bytes, learn the object's size and ETag from the same
answer, and fetch the rest of the metadata exactly when it is larger. The parsed footer is
kept per (object, ETag), so listing a dataset whose ETags are known costs no footer GETs on
a second scan.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from wjio import errors
from wjio.options import ScanOptions
from wjio.row_group_image import MAGIC, FooterLayout, footer_layout

if TYPE_CHECKING:
    import pyarrow.dataset as ds
from wjio.stats import ScanStats
from wjio.store import ObjectInfo, S3Store
from wjio.uri import S3Path

ENCRYPTED_MAGIC = b"PARE"
_TAIL = 8  # length + magic


@dataclass(frozen=True)
class Footer:
    """A parsed footer of one object, valid for exactly one ETag."""

    info: ObjectInfo
    metadata: pq.FileMetaData
    schema: pa.Schema
    """The Arrow schema pyarrow reads this file as (restored from ARROW:schema if present)."""
    footer_only: pa.Buffer
    """``PAR1 + footer``: a Parquet 'file' holding only metadata, for pruning by statistics."""
    fragment: ds.ParquetFileFragment
    """Arrow's fragment over ``footer_only``: parsed once, it prunes row groups by statistics."""

    @property
    def path(self) -> S3Path:
        return self.info.path

    _layouts: dict[frozenset[int], FooterLayout] = field(
        default_factory=dict, compare=False, repr=False)

    def layout(self, leaves: Collection[int]) -> FooterLayout:
        """Where the parts of the metadata lie, for row-group images placing chunks of
        ``leaves`` (walked on first use, then kept: two threads asking at once may both walk;
        raises :class:`~wjio.row_group_image.ThriftError` if the footer cannot be walked)."""
        key = frozenset(leaves)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = footer_layout(
                bytes(self.footer_only[len(MAGIC) : -_TAIL]), key)
        return found


@dataclass(frozen=True)
class Tail:
    """The last bytes of an object, fetched with its footer. Column chunks that lie inside
    are served from here instead of being fetched again (a small file costs one request)."""

    start: int
    data: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class FooterCache:
    """A small LRU of parsed footers keyed by (bucket, key, etag). Thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], Footer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: S3Path, etag: str | None) -> Footer | None:
        if not etag:
            return None
        with self._lock:
            footer = self._entries.get((path.bucket, path.key, etag))
            if footer is not None:
                self._entries.move_to_end((path.bucket, path.key, etag))
            return footer

    def put(self, footer: Footer) -> None:
        if not footer.info.etag:
            return
        with self._lock:
            self._entries[(footer.path.bucket, footer.path.key, footer.info.etag)] = footer
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


FOOTER_CACHE = FooterCache(ScanOptions().footer_cache_entries)


async def read_footer(
    store: S3Store,
    path: S3Path,
    *,
    etag: str | None,
    options: ScanOptions,
    stats: ScanStats,
    cache: FooterCache = FOOTER_CACHE,
) -> tuple[Footer, Tail | None]:
    """The footer of ``path`` and the tail bytes read with it (None on a cache hit);
    ``etag`` (from a listing) enables the cache and If-Match."""
    cached = cache.get(path, etag)
    if cached is not None:
        return cached, None
    stats.footer_requests += 1
    tail, info = await store.get_suffix(path, options.footer_read_size, etag=etag, stats=stats)
    meta_len = _check_tail(path, tail, info.size)
    footer_len = meta_len + _TAIL
    if footer_len > len(tail):
        stats.footer_requests += 1
        head = await store.get_range(
            path, info.size - footer_len, info.size - len(tail), etag=info.etag, stats=stats
        )
        tail = head + tail
    footer = parse_footer(info, memoryview(tail)[len(tail) - footer_len :])
    cache.put(footer)
    return footer, Tail(info.size - len(tail), tail)


def _check_tail(path: S3Path, tail: bytes, size: int) -> int:
    if size == 0:
        raise errors.NotParquetError(
            f"{path} is empty (0 bytes); expected a Parquet file", uri=str(path)
        )
    if size < len(MAGIC) * 2 + 4:
        raise errors.NotParquetError(
            f"{path} is {size} bytes, too small for a Parquet file (at least 12)", uri=str(path)
        )
    magic = bytes(tail[-4:])
    if magic == ENCRYPTED_MAGIC:
        raise errors.ParquetFormatError(
            f"{path} has an encrypted Parquet footer (PARE), which wjio does not read",
            uri=str(path),
        )
    if magic != MAGIC:
        raise errors.NotParquetError(
            f"{path} does not end with the Parquet magic 'PAR1' (found {magic!r}): not a "
            f"Parquet file, or truncated",
            uri=str(path),
        )
    (meta_len,) = struct.unpack("<I", tail[-8:-4])
    if meta_len + _TAIL + len(MAGIC) > size:
        raise errors.CorruptFooterError(
            f"{path}: footer claims {meta_len} bytes of metadata but the object is only "
            f"{size} bytes; the file is truncated or corrupt",
            uri=str(path),
        )
    return meta_len


def parse_footer(info: ObjectInfo, footer: memoryview | bytes) -> Footer:
    """Parse ``<metadata><len>PAR1`` (the last bytes of the object) into a :class:`Footer`."""
    footer_only = pa.py_buffer(MAGIC + bytes(footer))
    try:
        fragment = parquet_format().make_fragment(footer_only)
        fragment.ensure_complete_metadata()  # the one parse of the footer
        metadata, schema = fragment.metadata, fragment.physical_schema
    except (OSError, pa.ArrowException) as e:
        raise errors.CorruptFooterError(
            f"{info.path}: Parquet footer does not parse ({e}); the file is corrupt",
            uri=str(info.path),
        ) from e
    return Footer(info, metadata, schema, footer_only, fragment)


@cache
def parquet_format():
    """``pyarrow.dataset``'s Parquet format, imported on first use: ``pyarrow.dataset`` imports
    pandas when it is installed (~0.5 s), which a process that reads no footer (``wj resume``
    of late stages, ``wj status``) should not pay."""
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat()
