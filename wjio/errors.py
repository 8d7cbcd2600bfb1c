"""Typed errors raised by wjio.

All errors share one root, :class:`WjioError`. Each names the object (``s3://bucket/key``) it
concerns and says what was expected, and never carries credentials: messages are built from
bucket, key, codes and sizes only.
"""

from __future__ import annotations


class WjioError(Exception):
    """Root of every error wjio raises on purpose."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


# -- object store -------------------------------------------------------------------------


class StoreError(WjioError):
    """The object store refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, uri=uri)
        self.code = code
        self.request_id = request_id


class NoSuchBucketError(StoreError):
    """The bucket does not exist."""


class ObjectNotFoundError(StoreError):
    """The key (or prefix) names no object."""


class AccessDeniedError(StoreError):
    """Credentials were rejected or lack permission for the object."""


class ObjectChangedError(StoreError):
    """The object was replaced after its footer was read (its ETag no longer matches)."""


class StoreUnavailableError(StoreError):
    """Retries were exhausted on throttling, server errors, timeouts or broken connections."""


# -- Parquet ------------------------------------------------------------------------------


class ParquetFormatError(WjioError):
    """The object is not a readable Parquet file."""


class NotParquetError(ParquetFormatError):
    """The object lacks the Parquet magic bytes (or is empty)."""


class CorruptFooterError(ParquetFormatError):
    """The footer is truncated, claims more bytes than the object holds, or does not parse."""


# -- dataset / query ----------------------------------------------------------------------


class SchemaMismatchError(WjioError):
    """Files of one dataset have schemas that cannot be read as one table."""


class ColumnNotFoundError(WjioError, KeyError):
    """A requested column is not in the dataset's schema."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidPredicateError(WjioError, ValueError):
    """A filter is not a valid predicate for the dataset's schema."""
