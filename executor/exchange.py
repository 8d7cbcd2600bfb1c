"""The ``Exchange`` interface (after Trino's ``ExchangeSink``/``Exchange`` SPI) and an
in-memory implementation.

Call order, per producer task and attempt:

* ``create_sink(task, attempt)`` once per attempt; several attempts of a task may run;
* on a sink: any number of ``add(partition, batch)``, then exactly one of ``finish()`` or
  ``abort()``. ``add`` after ``finish``/``abort`` is an error. ``abort`` may race ``finish``:
  an abort after a successful finish is a no-op;
* the first attempt of a task to ``finish`` is committed; later finishes of other attempts
  of the same task are discarded (exactly one successful attempt per task);
* ``no_more_sinks(num_tasks)`` declares how many producer tasks there are;
* ``source()`` is valid once every task has a committed attempt, and reads only those;
* ``committed_tasks()`` may be asked at any time (a resumed query skips those tasks);
* ``invalidate(task, attempt)`` withdraws a commit whose output was found lost (a durable
  exchange's reader raises :class:`~executor.errors.TaskOutputLostError`), so the task can
  run and commit again.

A ``portable`` exchange keeps its data outside this process: it can be pickled to a worker
process and used there directly.

The object-store implementation (``checkpoint/``) keeps these semantics with durable commits.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator

import pyarrow as pa

from executor.errors import ExchangeError


class ExchangeSink(ABC):
    """Receives one producer attempt's output, partitioned."""

    @abstractmethod
    def add(self, partition: int, batch: pa.RecordBatch) -> None: ...

    @abstractmethod
    def finish(self) -> bool:
        """Commit this attempt; False if another attempt of the task committed first."""

    @abstractmethod
    def abort(self) -> None:
        """Discard this attempt's output (no-op after a successful finish)."""


class ExchangeSource(ABC):
    """Reads committed output."""

    @abstractmethod
    def read(self, partition: int) -> Iterator[pa.RecordBatch]:
        """All committed batches of ``partition``, producer task order."""

    def read_all(self, num_partitions: int) -> Iterator[pa.RecordBatch]:
        for p in range(num_partitions):
            yield from self.read(p)


class Exchange(ABC):
    """One stage boundary: producers write partitions, consumers read them."""

    num_partitions: int
    portable: bool = False

    @abstractmethod
    def create_sink(self, task: int, attempt: int) -> ExchangeSink: ...

    @abstractmethod
    def no_more_sinks(self, num_tasks: int) -> None: ...

    @abstractmethod
    def is_complete(self) -> bool: ...

    @abstractmethod
    def source(self) -> ExchangeSource: ...

    @abstractmethod
    def committed_tasks(self) -> set[int]:
        """The tasks that have a committed attempt."""

    @abstractmethod
    def invalidate(self, task: int, attempt: str) -> None:
        """Withdraw ``task``'s commit if it still names ``attempt``."""


class _MemorySink(ExchangeSink):
    def __init__(self, exchange: InMemoryExchange, task: int, attempt: int) -> None:
        self.exchange, self.task, self.attempt = exchange, task, attempt
        self.buffers: dict[int, list[pa.RecordBatch]] = defaultdict(list)
        self.state = "open"

    def add(self, partition: int, batch: pa.RecordBatch) -> None:
        if self.state != "open":
            raise ExchangeError(f"add after {self.state} (task {self.task}, "
                                f"attempt {self.attempt})")
        if not 0 <= partition < self.exchange.num_partitions:
            raise ExchangeError(f"partition {partition} out of range "
                                f"0..{self.exchange.num_partitions - 1}")
        self.buffers[partition].append(batch)

    def finish(self) -> bool:
        if self.state != "open":
            raise ExchangeError(f"finish after {self.state} (task {self.task})")
        self.state = "finished"
        return self.exchange._commit(self)

    def abort(self) -> None:
        if self.state == "open":
            self.state = "aborted"
            self.buffers.clear()


class _MemorySource(ExchangeSource):
    def __init__(self, committed: dict[int, _MemorySink]) -> None:
        self.committed = committed

    def read(self, partition: int) -> Iterator[pa.RecordBatch]:
        for task in sorted(self.committed):
            yield from self.committed[task].buffers.get(partition, ())


class InMemoryExchange(Exchange):
    """Exchange data held in this process's memory."""

    def __init__(self, num_partitions: int, name: str = "exchange") -> None:
        self.num_partitions = num_partitions
        self.name = name
        self._lock = threading.Lock()
        self._committed: dict[int, _MemorySink] = {}
        self._num_tasks: int | None = None

    def create_sink(self, task: int, attempt: int) -> ExchangeSink:
        return _MemorySink(self, task, attempt)

    def _commit(self, sink: _MemorySink) -> bool:
        with self._lock:
            if sink.task in self._committed:
                sink.buffers.clear()
                return False
            self._committed[sink.task] = sink
            return True

    def no_more_sinks(self, num_tasks: int) -> None:
        self._num_tasks = num_tasks

    def committed_tasks(self) -> set[int]:
        with self._lock:
            return set(self._committed)

    def invalidate(self, task: int, attempt: str) -> None:
        with self._lock:
            sink = self._committed.get(task)
            if sink is not None and str(sink.attempt) == attempt:
                del self._committed[task]

    def is_complete(self) -> bool:
        with self._lock:
            return self._num_tasks is not None and all(
                t in self._committed for t in range(self._num_tasks))

    def source(self) -> ExchangeSource:
        if not self.is_complete():
            raise ExchangeError(f"{self.name}: read before every producer task committed "
                                f"({len(self._committed)} of {self._num_tasks})")
        return _MemorySource(dict(self._committed))
