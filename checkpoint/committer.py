"""Uploads and commits of this process's finished task attempts, in the background.

With the thread runner a task's ``finish`` hands its encoded output to the query's
:class:`Committer` and returns: the upload runs on the IO loop while the next tasks (the
next stage's too) compute, reading the finished attempt's batches from memory. What still
holds:

* **Commit after upload.** An attempt's commit record is created only after its object was
  written (the record names the object's ETag), with ``If-None-Match: *`` as before.
* **Producers commit first.** Commits are created in the order the attempts finished (each
  waits for the previous one), and a stage's tasks start only after every producer task
  finished: so a consumer's commit never precedes the commits of the outputs it read.
* **A failure commits nothing more.** The first upload or commit that fails (or an attempt
  that loses its commit to another runner, which this run's consumers may already have read
  from memory) fails the committer: no later commit is created, and the error is raised to
  the query (by the next ``finish``, the next ``source()``, or :meth:`Committer.drain`,
  which the query awaits before it writes its result). A resume runs what was not
  committed.
* **Bounded memory.** ``finish`` waits while more than ``in_flight`` bytes of output are
  waiting for or in encoding and upload (as each job declares them).

Measured on TPC-H SF1 through moto (2 cores): the task threads had waited 0.8-1.7 s per
q05 run in ``finish`` for the upload and the commit; on S3 or MinIO the upload is a larger
share (bandwidth, not CPU), so the overlap counts more there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from wjio.sync import io_loop


class Committer:
    """Background upload-then-commit jobs of one query, committed in submission order."""

    def __init__(self, in_flight: int) -> None:
        if in_flight < 1:
            raise ValueError(f"Committer in_flight must be >= 1 byte, got {in_flight}")
        self.in_flight = in_flight
        self._cond = threading.Condition()
        self._bytes = 0
        self._tail: cf.Future | None = None
        """Completion of the last job submitted: the next job's commit waits for it."""
        self._jobs: set[cf.Future] = set()
        self._error: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        """The failure that stopped this committer (None while none did)."""
        return self._error

    def check(self) -> None:
        """Raise the failure that stopped this committer, if any."""
        if self._error is not None:
            raise self._error

    def submit(self, size: int, upload: Callable[[], Coroutine[Any, Any, Any]],
               commit: Callable[[Any], Coroutine[Any, Any, None]],
               discard: Callable[[], Coroutine[Any, Any, None]]) -> cf.Future:
        """Run ``upload()`` now, then ``commit(upload's result)`` once every earlier job's
        commit is done, unless the committer failed by then; on a failure (or a skipped
        commit) ``discard()``, best effort. Waits while over ``in_flight`` bytes are in
        flight. The future is done when the job is, with its error if it failed."""
        with self._cond:
            self.check()
            while self._bytes > 0 and self._bytes + size > self.in_flight \
                    and self._error is None:
                self._cond.wait()
            self.check()
            self._bytes += size
            prev, mine = self._tail, cf.Future()
            self._tail = mine
        job = asyncio.run_coroutine_threadsafe(
            self._job(size, upload, commit, discard, prev, mine), io_loop())
        with self._cond:
            self._jobs.add(job)
        job.add_done_callback(self._done)
        return job

    def drain(self, *, raise_error: bool = True) -> None:
        """Wait for every job submitted; then raise the failure, if any (unless told not
        to: a query already failing for another reason keeps its own error)."""
        while True:
            with self._cond:
                jobs = list(self._jobs)
            if not jobs:
                break
            cf.wait(jobs)
        if raise_error:
            self.check()

    def _done(self, job: cf.Future) -> None:
        with self._cond:
            self._jobs.discard(job)
            self._cond.notify_all()

    def _fail(self, err: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = err
            self._cond.notify_all()

    async def _job(self, size: int, upload, commit, discard, prev: cf.Future | None,
                   mine: cf.Future) -> None:
        try:
            try:
                uploaded = await upload()
            finally:
                with self._cond:
                    self._bytes -= size
                    self._cond.notify_all()
            if prev is not None:
                await asyncio.wrap_future(prev)
            if self._error is not None:
                raise _Skipped()
            await commit(uploaded)
        except BaseException as err:
            if not isinstance(err, _Skipped):
                self._fail(err)
            try:
                await discard()
            except Exception:  # best effort: an uncommitted object is gc's either way
                pass
            if not isinstance(err, _Skipped):
                raise
        finally:
            mine.set_result(None)


class _Skipped(Exception):
    """An earlier job failed: this one's commit is not created."""
