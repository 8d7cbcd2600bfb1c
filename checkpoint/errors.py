"""Typed errors of the checkpoint store.

All share one root, :class:`CheckpointError`; each names the query root (or object) concerned
and says what was expected. A lost task output is the executor's
:class:`~executor.errors.TaskOutputLostError`, because the stage runner is what recomputes it.
"""

from __future__ import annotations

from executor.errors import ExecutorError


class CheckpointError(ExecutorError):
    """Root of every error the checkpoint store raises on purpose (an executor error: the
    store is where a checkpointed query's stages run, and ``wj sql`` reports it as one)."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class InvalidQueryRootError(CheckpointError, ValueError):
    """A root or query URI is malformed, or its query id or path is not allowed."""


class QueryNotFoundError(CheckpointError):
    """No query was created at this root (no ``plan.json``)."""


class IncompatibleQueryError(CheckpointError):
    """The query was written in a format (or by a plan version) this code cannot resume."""


class CorruptManifestError(CheckpointError):
    """A plan, commit record or result manifest does not decode or contradicts itself."""


class InputsChangedError(CheckpointError):
    """An input object of the query changed (ETag, size) or vanished since it was planned.

    ``changes`` lists one line per changed object.
    """

    def __init__(self, message: str, *, uri: str | None = None,
                 changes: tuple[str, ...] = ()) -> None:
        super().__init__(message, uri=uri)
        self.changes = changes

