"""Options of the object-store client and of a scan, each declared once with its default and why.

Defaults are derived from what a remote object store looks like: first-byte latency of tens
of milliseconds and ~50-100 MB/s per connection. A request then costs about
``latency + size / bandwidth``, which drives the range-planning limits below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class StoreOptions:
    """How wjio talks to the object store.

    Credentials are taken from the standard AWS chain (environment, config files, instance
    metadata) unless given here; they are never printed (see ``__repr__``).
    """

    endpoint_url: str | None = None
    """Custom endpoint (MinIO, local rig). Default: ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``."""
    region: str | None = None
    """Region; default from the AWS chain, else ``us-east-1``."""
    addressing_style: str | None = None
    """``path`` or ``virtual``; default ``path`` when an endpoint is set (MinIO), else auto."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    max_connections: int = 128
    """Connection-pool size; bounds requests in flight to the store."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    """Longest silence tolerated on a socket read before the request is retried."""
    max_attempts: int = 8
    """Attempts per request (first + retries) on throttling, 5xx, resets and short reads."""
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 2.0
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**attempt))."""
    sse: str | None = None
    """Server-side encryption of every object written: ``AES256`` (SSE-S3) or ``aws:kms``;
    default: the bucket's own setting."""
    sse_kms_key_id: str | None = None
    """KMS key for ``sse="aws:kms"`` (default: the account's S3 key)."""

    def __post_init__(self) -> None:
        if self.sse not in (None, "AES256", "aws:kms"):
            raise ValueError(f"sse must be 'AES256' or 'aws:kms', got {self.sse!r}")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse='aws:kms'")
        if self.addressing_style not in (None, "path", "virtual", "auto"):
            raise ValueError(
                f"addressing_style must be 'path', 'virtual' or 'auto', "
                f"got {self.addressing_style!r}"
            )
        for name in ("max_connections", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def resolved_endpoint(self) -> str | None:
        return (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("aws_secret_access_key", "aws_session_token", "aws_access_key_id"):
                value = "***" if value else None
            shown.append(f"{f.name}={value!r}")
        return f"StoreOptions({', '.join(shown)})"


@dataclass(frozen=True)
class ScanOptions:
    """How a scan plans and fetches byte ranges."""

    footer_read_size: int = 128 * KiB
    """Speculative suffix read for the footer. Most footers fit (a 24-column, 32-row-group
    file's is ~90 KB); a larger one costs one more exact read. Column chunks inside these
    bytes are not fetched again, but bytes of unneeded chunks are waste, so it stays small."""
    hole_size_limit: int = 8 * KiB
    """Ranges separated by at most this many bytes are merged into one request. Small on
    purpose: separate requests run in parallel, so merging only saves per-request overhead and
    must not fetch unneeded columns."""
    range_size_limit: int = 8 * MiB
    """Ranges longer than this are split into near-equal pieces (each over half of it) so one
    large chunk uses several connections: at ~25 ms first-byte latency and ~80 MB/s a request
    of 4-8 MiB spends >65% of its time moving data, so smaller pieces mostly add overhead."""
    min_range_size: int = 128 * KiB
    """A scan fetching less than ``bytes_in_flight // range_size_limit`` full-size requests
    (twelve) carry splits its ranges so that they use that many connections, but not into
    pieces smaller than this: at ~80 MB/s 128 KiB take 1.6 ms on the wire against ~25 ms to
    the first byte, so smaller pieces save little and cost a request each."""
    concurrency: int = 128
    """Range requests in flight across all files of the scan. 3 columns of 32 row groups are
    96 requests: with fewer slots a second wave costs a whole extra first-byte latency."""
    bytes_in_flight: int = 96 * MiB
    """Bytes of range requests in flight at once; requests start in row-group order. Requests
    in flight share the link, so when a large scan has all its row groups in flight, all of
    them arrive at the end and decoding waits for the last. Bounded, row groups arrive in turn
    and decode while later ones are fetched. At ~25 ms first-byte latency and ~80 MB/s per
    connection an 8 MiB request takes ~130 ms: twelve of them (96 MiB) carry ~770 MB/s,
    and a scan of small column chunks (3 columns x 32 row groups) still has all in flight."""
    memory_budget: int = 512 * MiB
    """Bytes of fetched-but-undecoded buffers plus decoded-but-unconsumed batches. A scan larger
    than this runs in bounded memory: fetching waits until the consumer catches up. One row
    group larger than the budget is still read, alone."""
    decode_threads: int = field(default_factory=lambda: max(2, min(8, 2 * (os.cpu_count() or 1))))
    """Row groups decoded in parallel, off the event-loop thread. Twice the cores: decoding
    releases the GIL, and extra threads keep the cores busy while others wait on the GIL
    (measured on 2 cores: 4 threads beat 2 by ~5% on 3 columns and ~10% on a full scan)."""
    batch_size: int = 64 * 1024
    """Maximum rows per record batch delivered."""
    footer_cache_entries: int = 1024
    """Parsed footers kept per process, keyed by (object, ETag)."""
    list_concurrency: int = 32
    """Footer requests in flight while opening a dataset of many files."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0 or (value == 0 and f.name != "hole_size_limit"):
                raise ValueError(f"ScanOptions.{f.name} must be positive, got {value}")
        if self.footer_read_size < 8:
            raise ValueError("ScanOptions.footer_read_size must be >= 8 (Parquet tail)")
