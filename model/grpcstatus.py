"""The one table between Shardmon's errors and gRPC status codes, used by every gRPC edge.

Servers (``shards/server.py``, ``querier/grpc_api.py``) turn an error into a status with
:func:`status_of`. Clients (``shards/client.py``, ``shardmon/client.py``) turn a failed call back into
an error with :func:`error_of`, naming the API they called, because a code alone is ambiguous:
``INVALID_ARGUMENT`` from a shard's ``Write`` is a batch it will never accept, from the Query API a
malformed query. So a shard's "overloaded" arrives at the scraper as a retryable
:class:`~shardmon.model.errors.ShardOverloadedError`, and a bad query at a ``QueryClient`` user as the same
:class:`~shardmon.model.errors.BadQueryError` the HTTP API answers 400 ``bad_data`` for, not as a string.
Where a code alone does not say which class it was, the server adds a trailer (:func:`trailers_of`;
aio servers end a call with :func:`abort`): a query over ``querier.max_samples`` comes back as a
:class:`~shardmon.model.errors.QueryLimitError` naming the limit, not as any execution error.
"""

from __future__ import annotations

from typing import NamedTuple

import grpc

from shardmon.model import errors

_C = grpc.StatusCode

# Error class -> status code; the first match (most specific first) wins. Anything else is INTERNAL.
_TO_STATUS: tuple[tuple[type[errors.ShardmonError], grpc.StatusCode], ...] = (
    (errors.BadQueryError, _C.INVALID_ARGUMENT),
    (errors.QueryTimeoutError, _C.DEADLINE_EXCEEDED),
    (errors.QueryCanceledError, _C.CANCELLED),  # the client went away or cancelled the call
    (errors.QueryExecutionError, _C.FAILED_PRECONDITION),  # QueryLimitError too, its limit in the trailers
    (errors.QueryUnavailableError, _C.UNAVAILABLE),
    (errors.InvalidWriteError, _C.INVALID_ARGUMENT),
    (errors.ShardOverloadedError, _C.RESOURCE_EXHAUSTED),
    (errors.ShardUnavailableError, _C.UNAVAILABLE),  # ShardDataLostError, ShardNotDurableError: retryable
    (errors.BadRequestError, _C.INVALID_ARGUMENT),  # BodyTooLargeError, RemoteWriteError, PushError too
    (errors.RegexError, _C.INVALID_ARGUMENT),  # a matcher's regex RE2 rejects
    (errors.PermissionDeniedError, _C.PERMISSION_DENIED),
    (errors.UnauthenticatedError, _C.UNAUTHENTICATED),
    (errors.ConfigError, _C.FAILED_PRECONDITION),
)

#: Codes after which the same request may succeed later.
RETRYABLE_CODES = frozenset({_C.UNAVAILABLE, _C.RESOURCE_EXHAUSTED, _C.DEADLINE_EXCEEDED, _C.ABORTED, _C.CANCELLED})


class Api(NamedTuple):
    """What a client of one gRPC API raises for each status code (codes not listed: ``other``)."""

    name: str
    errors: dict[grpc.StatusCode, type[errors.ShardmonError]]
    other: type[errors.ShardmonError]


# Whoever is called, these mean the same.
_ANY: dict[grpc.StatusCode, type[errors.ShardmonError]] = {
    _C.PERMISSION_DENIED: errors.PermissionDeniedError,
    _C.UNAUTHENTICATED: errors.UnauthenticatedError,
}
_SHARD_RETRY = {code: errors.ShardUnavailableError for code in RETRYABLE_CODES} | {
    _C.RESOURCE_EXHAUSTED: errors.ShardOverloadedError,
}

#: A shard's writing RPCs (``Write``, ``Flush``, ``Reset``).
SHARD_WRITE = Api("shard write", {**_ANY, **_SHARD_RETRY, _C.INVALID_ARGUMENT: errors.InvalidWriteError},
                  errors.StorageError)
#: A shard's reading RPCs (``Series``, ``LabelNames``, ``LabelValues``, ``Metadata``): a request the
#: shard refuses is a bad query (a matcher it cannot use).
SHARD_READ = Api("shard read", {**_ANY, **_SHARD_RETRY, _C.INVALID_ARGUMENT: errors.BadQueryError},
                 errors.StorageError)
#: The querier's Query API: the errors the HTTP API maps to Prometheus's error types.
QUERY = Api("query", {
    **_ANY,
    _C.INVALID_ARGUMENT: errors.BadQueryError,
    _C.DEADLINE_EXCEEDED: errors.QueryTimeoutError,
    _C.FAILED_PRECONDITION: errors.QueryExecutionError,
    _C.UNAVAILABLE: errors.QueryUnavailableError,
    # The querier shedding load, or a call cut short: trying again later may succeed.
    _C.RESOURCE_EXHAUSTED: errors.QueryUnavailableError,
    _C.ABORTED: errors.QueryUnavailableError,
    # The query was called off (the client cancelled the call, or went away): Prometheus's "canceled".
    _C.CANCELLED: errors.QueryCanceledError,
}, errors.QueryExecutionError)

#: Trailing-metadata key with which a server names the limit a :class:`~shardmon.model.errors.QueryLimitError`
#: hit (``querier.max_samples``, ...): the status code alone (FAILED_PRECONDITION) is any execution error.
LIMIT_KEY = "shardmon-limit"


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The status a server answers for ``exc`` (INTERNAL for anything outside the error tree)."""
    for cls, code in _TO_STATUS:
        if isinstance(exc, cls):
            return code
    return _C.INTERNAL


def trailers_of(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """The trailing metadata a server sends with the status of ``exc``, so that :func:`error_of` gives the
    caller the same class back where the code alone is ambiguous (a query limit's name)."""
    if isinstance(exc, errors.QueryLimitError):
        return ((LIMIT_KEY, exc.limit),)
    return ()


async def abort(context, exc: BaseException, details: str | None = None) -> None:
    """End an aio server call with the status of ``exc`` (its message, or ``details``) and its trailers."""
    await context.abort(status_of(exc), str(exc) if details is None else details, trailing_metadata=trailers_of(exc))


def _trailer(exc: grpc.RpcError, key: str) -> str | None:
    try:
        metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    except Exception:  # noqa: BLE001 - an error without a call (e.g. never sent) has no trailers
        metadata = None
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return None


def error_of(exc: grpc.RpcError, what: str | None = None, api: Api = SHARD_WRITE) -> errors.ShardmonError:
    """Translate a failed call of ``api`` into the error tree. With ``what`` (e.g. ``"shard 1 Write"``)
    the message is ``"<what>: <CODE>: <details>"``; without, the server's details alone (the Query API's
    messages are written for users, as the HTTP API's), but ``"<CODE>: <details>"`` for a code the API
    does not expect and for a caller refused (``UNAUTHENTICATED``, ``PERMISSION_DENIED``)."""
    code = exc.code() if hasattr(exc, "code") else _C.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    cls = api.errors.get(code, api.other)
    limit = _trailer(exc, LIMIT_KEY) if code is _C.FAILED_PRECONDITION else None
    if limit is not None and issubclass(errors.QueryLimitError, cls):  # an execution error over a limit
        return errors.QueryLimitError(f"{what}: {code.name}: {detail}" if what else detail, limit)
    if what:
        return cls(f"{what}: {code.name}: {detail}")
    if code not in api.errors or code in _ANY:  # An unexpected code, or the caller refused: say which.
        return cls(f"{code.name}: {detail}")
    return cls(detail)
