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
    inline_max: int = 256 * 1024
    """A task attempt whose encoded output (all partitions) is at most this many bytes writes
    no data object: its commit record carries the output (base64), so the attempt costs one
    PUT instead of two and the consumers of other processes one GET of the record instead of
    a ranged GET per partition. 0: never (every attempt writes a data object). Measured per
    task output of random bytes on moto's server (2 shared cores; 20 writes each): up to 256
    KiB an inline record took 23-27 ms to write vs 32-38 ms for object + record, and half the
    server CPU (5-5.5 vs 9.5-11 ms); a consumer in another process reading 1/8 of it took
    about as long as a ranged GET (9 vs 8.6 ms at 256 KiB; +2.5 ms client CPU, the record
    is decoded whole). At 1 MiB the write saved 4 ms but that read took 2x; at 4 MiB inline
    was slower to write too (85 vs 49 ms: the record's JSON and zstd). Most outputs of the
    TPC-H exchanges are below this (all of q03's tasks write 1.6 MB together): on SF1 (8
    files per table) q01/q03/q05/q09/q18 made 9/19/33/34/27 checkpoint requests instead of
    14/28/47/47/44, and checkpointed runs took +13.6% wall and +14.6% CPU (client + server)
    over in-memory ones instead of +20.9% and +21.5% (medians of 5 interleaved runs)."""
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

    def inlines(self, size: int) -> bool:
        """Whether an output (or result) of ``size`` encoded bytes is carried in its record
        (see :attr:`inline_max`)."""
        return 0 < self.inline_max and size <= self.inline_max

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
        if not 0 <= self.inline_max <= self.multipart_over:
            raise ValueError(f"CheckpointOptions.inline_max must be 0..multipart_over "
                             f"({self.multipart_over}) bytes (an inline record is one PUT), "
                             f"got {self.inline_max}")
        for f in fields(self):
            if f.name not in ("codec", "local_copies", "inline_max") and getattr(self, f.name) < 1:
                raise ValueError(f"CheckpointOptions.{f.name} must be >= 1")
