"""Counters of one scan: requests, bytes, pruning and time (``ParquetScan.stats``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ScanStats:
    requests: int = 0
    """Requests sent to the object store (every attempt counts)."""
    footer_requests: int = 0
    list_requests: int = 0
    retries: int = 0
    bytes_fetched: int = 0
    """Body bytes received from the store (footers included, failed attempts included)."""
    bytes_needed: int = 0
    """Total size of the needed column chunks of the row groups that survived pruning."""
    files: int = 0
    files_pruned: int = 0
    row_groups_total: int = 0
    row_groups_pruned: int = 0
    rows: int = 0
    max_in_flight: int = 0
    peak_memory: int = 0
    """Highest memory-budget usage (fetched + decoded bytes held by the scan)."""
    wall_time_s: float = 0.0

    # in-flight gauge, not reported
    _in_flight: int = field(default=0, repr=False)

    def request_started(self) -> None:
        self.requests += 1
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def request_finished(self) -> None:
        self._in_flight -= 1

    @property
    def fetch_ratio(self) -> float:
        """Bytes fetched / bytes needed (1.0 is perfect; footers count as overhead)."""
        return self.bytes_fetched / self.bytes_needed if self.bytes_needed else float("nan")

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["fetch_ratio"] = self.fetch_ratio if self.bytes_needed else None
        return d
