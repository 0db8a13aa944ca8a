"""The error tree of Shardmon.

Every error says whether retrying can help. Lower-layer exceptions (gRPC, Redis, HTTP) are
translated into this tree exactly once, at the edge that meets them (``raise ... from exc``), and
back into a transport status exactly once, by one table per transport.

::

    ShardmonError                      .retryable
    ├── ConfigError                    no     a bad configuration; names the field path
    ├── ExpositionError                no     a malformed scrape body; names the line
    ├── QueryError                     no
    │   ├── BadQueryError              no     HTTP 400 bad_data, gRPC INVALID_ARGUMENT
    │   ├── QueryExecutionError        no     HTTP 422 execution, gRPC FAILED_PRECONDITION
    │   │   └── QueryLimitError        no     ... over querier.max_samples / max_series (.limit names it)
    │   ├── QueryTimeoutError          no     HTTP 503 timeout, gRPC DEADLINE_EXCEEDED
    │   ├── QueryCanceledError         no     HTTP 499 canceled, gRPC CANCELLED (the client went away)
    │   └── QueryUnavailableError      yes    HTTP 503 unavailable, gRPC UNAVAILABLE (a shard down, abort)
    └── StorageError                   no
        ├── InvalidWriteError          no     a batch the shard can never accept (INVALID_ARGUMENT)
        ├── ShardUnavailableError      yes    the shard or its Redis cannot be reached (UNAVAILABLE)
        └── ShardOverloadedError       yes    the shard sheds load (RESOURCE_EXHAUSTED)
"""

from __future__ import annotations


class ShardmonError(Exception):
    """Base of all Shardmon errors. ``retryable`` tells a sender whether to try again."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(ShardmonError):
    """An invalid configuration. The message starts with the field path, e.g. ``scrape_configs.0.job_name``."""


class ExpositionError(ShardmonError):
    """A scrape body that is not valid exposition text. ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class QueryError(ShardmonError):
    """Base of the errors a query can end with."""

    error_type = "execution"


class BadQueryError(QueryError):
    """The query or its parameters are malformed."""

    error_type = "bad_data"


class QueryExecutionError(QueryError):
    """The query is well formed but cannot be evaluated (e.g. many-to-many matching)."""

    error_type = "execution"


class QueryLimitError(QueryExecutionError):
    """The query would load more than a limit allows; ``limit`` is the config field that sets it
    (``querier.max_samples`` or ``querier.max_series``). Loading stops as soon as it is known."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class QueryTimeoutError(QueryError):
    """The query ran longer than its timeout."""

    error_type = "timeout"


class QueryCanceledError(QueryError):
    """The query was called off before it ended (its client disconnected or cancelled the call)."""

    error_type = "canceled"


class QueryUnavailableError(QueryError):
    """Data the query needs could not be read (a shard down with ``partial_response: abort``)."""

    error_type = "unavailable"
    retryable = True


class StorageError(ShardmonError):
    """Base of the errors of the storage shards."""


class InvalidWriteError(StorageError):
    """A write the shard will never accept, however often it is retried."""


class ShardUnavailableError(StorageError):
    """The shard or its Redis could not be reached; retry later."""

    retryable = True


class ShardOverloadedError(StorageError):
    """The shard is shedding load; retry later with backoff."""

    retryable = True
