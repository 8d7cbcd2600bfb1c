"""Options of the checkpoint store, each declared once with its default and why."""

from __future__ import annotations

from dataclasses import dataclass, fields

from checkpoint.codec import CODECS, DEFAULT_CODEC, ZSTD_LEVEL

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part (all but the last)


@dataclass(frozen=True)
class CheckpointOptions:
    """How task outputs are written to and read from the store."""

    codec: str = DEFAULT_CODEC
    """Compression of task outputs, one of ``lz4``, ``zstd``, ``none`` (see
    :data:`checkpoint.codec.DEFAULT_CODEC`). Readers decode any: it may differ between the
    run and the resume of one query."""
    zstd_level: int = ZSTD_LEVEL
    """Arrow IPC zstd level of task outputs written with ``codec="zstd"`` (see
    :data:`checkpoint.codec.ZSTD_LEVEL`)."""
    part_size: int = 16 * MiB
    """Parts of a multipart upload are this large: they upload in parallel, a failed part is
    retried alone, and a failed upload is aborted."""
    multipart_over: int = 64 * MiB
    """An output larger than this is a multipart upload; up to it, one PUT. A multipart
    upload costs two more requests and its completion, which a store may pay as a copy of
    the whole object (moto's server does: ~2x a PUT's server CPU), while the parallel parts
    only pay off for objects well above a part (AWS advises multipart from ~100 MB)."""
    read_range_size: int = 8 * MiB
    """A consumer reads a producer's partition in ranges of at most this many bytes, in
    parallel (as wjio's ``ScanOptions.range_size_limit``, same reasoning)."""
    local_copies: int = 512 * MiB
    """Bytes of Arrow data of committed outputs a run keeps in memory for its own next stages
    (:class:`~checkpoint.copies.LocalCopies`; the thread runner's consumers take them
    instead of a GET and a decode). The in-memory exchange would hold all of it; this bounds
    it (the largest SF1 TPC-H exchange, q05's, is ~300 MB). 0 turns it off: every read goes
    to the store."""
    encode_ahead: int = 64 * MiB
    """Bytes of Arrow data a task may have added but not yet encoded: its batches compress
    on the encode pool while it computes on (:mod:`checkpoint.encoder`); beyond this, ``add``
    waits."""
    upload_ahead: int = 256 * MiB
    """Bytes of finished task outputs not yet committed that a run on threads may hold
    (:mod:`checkpoint.committer`): their encoded bytes and the batches its next tasks read
    from memory meanwhile. Beyond this, ``finish`` waits."""
    read_tasks_at_once: int = 32
    """Producers whose partition is fetched at once; bounds a consumer's read buffers."""

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"CheckpointOptions.codec must be one of {', '.join(CODECS)}, "
                             f"got {self.codec!r}")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level must be 1..22, got {self.zstd_level}")
        if self.part_size < _MIN_PART:
            raise ValueError(f"part_size must be >= 5 MiB (S3's minimum), got {self.part_size}")
        if self.local_copies < 0:
            raise ValueError(f"CheckpointOptions.local_copies must be >= 0, got "
                             f"{self.local_copies}")
        if self.multipart_over < self.part_size:
            raise ValueError(f"multipart_over ({self.multipart_over}) must be >= part_size "
                             f"({self.part_size})")
        for f in fields(self):
            if f.name not in ("codec", "local_copies") and getattr(self, f.name) < 1:
                raise ValueError(f"CheckpointOptions.{f.name} must be >= 1")
