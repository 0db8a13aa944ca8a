"""The one table between Shardmon's errors and gRPC status codes, used by every gRPC edge.

Servers turn an error into a status with :func:`status_of`; clients turn a failed call back into an
error with :func:`error_of`, so a shard's "overloaded" arrives at the scraper as a retryable
:class:`~model.errors.ShardOverloadedError` and not as a string.
"""

from __future__ import annotations

import grpc

from model import errors

# Error class -> status code; the first match (most specific first) wins.
_TO_STATUS: tuple[tuple[type[errors.ShardmonError], grpc.StatusCode], ...] = (
    (errors.BadQueryError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.QueryTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.QueryCanceledError, grpc.StatusCode.CANCELLED),
    (errors.QueryExecutionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.QueryUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.InvalidWriteError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ShardOverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.ShardUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)

#: Codes after which the same request may succeed later.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)


def status_of(exc: BaseException) -> grpc.StatusCode:
    for cls, code in _TO_STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def error_of(exc: grpc.RpcError, what: str) -> errors.ShardmonError:
    """Translate a failed call to ``what`` (e.g. ``"shard 1 Write"``) into the error tree."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    msg = f"{what}: {code.name}: {detail}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return errors.ShardOverloadedError(msg)
    if code in RETRYABLE_CODES:
        return errors.ShardUnavailableError(msg)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidWriteError(msg)
    return errors.StorageError(msg)
