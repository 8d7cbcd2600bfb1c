"""Options of the checkpoint store, each declared once with its default and why."""

from __future__ import annotations

from dataclasses import dataclass, fields

from checkpoint.codec import ZSTD_LEVEL

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part (all but the last)


@dataclass(frozen=True)
class CheckpointOptions:
    """How task outputs are written to and read from the store."""

    zstd_level: int = ZSTD_LEVEL
    """Arrow IPC zstd level of task outputs (see :data:`checkpoint.codec.ZSTD_LEVEL`)."""
    part_size: int = 16 * MiB
    """An output larger than this is a multipart upload of parts this large: parts upload in
    parallel, a failed part is retried alone, and a failed upload is aborted. Below it, one
    PUT (one request instead of three)."""
    read_range_size: int = 8 * MiB
    """A consumer reads a producer's partition in ranges of at most this many bytes, in
    parallel (as wjio's ``ScanOptions.range_size_limit``, same reasoning)."""
    read_tasks_at_once: int = 32
    """Producers whose partition is fetched at once; bounds a consumer's read buffers."""

    def __post_init__(self) -> None:
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level must be 1..22, got {self.zstd_level}")
        if self.part_size < _MIN_PART:
            raise ValueError(f"part_size must be >= 5 MiB (S3's minimum), got {self.part_size}")
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"CheckpointOptions.{f.name} must be >= 1")
