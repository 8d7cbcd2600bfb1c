"""The execution context handed to every operator's ``execute``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from executor.sources import TableSource, open_source


@dataclass
class ExecContext:
    """Options and services of one task.

    ``num_partitions`` is the number of tasks running the same stage (scans split their
    files by it); ``exchange_inputs`` maps an exchange id to the source a stage reads it
    from; ``sources`` overrides how a table URI is opened (tests, catalogs).
    """

    num_partitions: int = 1
    batch_size: int = 64 * 1024
    max_nested_loop_rows: int = 20_000_000
    sources: dict[str, TableSource] = field(default_factory=dict)
    source_factory: Callable[[str], TableSource] = open_source
    exchange_inputs: dict[int, Any] = field(default_factory=dict)
    parallelism: int = 2
    """Tasks run at once by the stage scheduler (threads or processes)."""
    memory_budget: int | None = None
    """Bytes one query may hold; big inputs get more hash partitions (``distribute``)."""

    def source(self, table: str) -> TableSource:
        if table not in self.sources:
            self.sources[table] = self.source_factory(table)
        return self.sources[table]

    def for_stage(self, num_partitions: int, exchange_inputs: dict[int, Any]) -> ExecContext:
        return ExecContext(
            num_partitions=num_partitions, batch_size=self.batch_size,
            max_nested_loop_rows=self.max_nested_loop_rows, sources=self.sources,
            source_factory=self.source_factory, exchange_inputs=exchange_inputs,
            parallelism=self.parallelism, memory_budget=self.memory_budget,
        )
