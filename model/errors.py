"""The error tree of Shardmon.

Every error says whether retrying can help. Lower-layer exceptions (gRPC, Redis, HTTP) are
translated into this tree exactly once, at the edge that meets them (``raise ... from exc``), and
back into a transport status exactly once, by one table per transport (gRPC: ``model/grpcstatus.py``).

::

    ShardmonError                      .retryable
    ├── ConfigError                    no     a bad configuration; names the field path
    │   └── KubeConfigError            no     no Kubernetes API server or credentials (ingest/discovery)
    ├── TargetError                    no     a target Prometheus would not create (ingest/target.py)
    ├── ExpositionError                no     a malformed scrape body; names the line
    ├── BadRequestError                no     HTTP 400, gRPC INVALID_ARGUMENT: a request that can never succeed
    │   ├── RemoteWriteError           no     a remote-write body that cannot be read (ingest/remote_write.py)
    │   └── PushError                  no     a push the Pushgateway API refuses (ingest/pushgateway.py)
    ├── PermissionDeniedError          no     HTTP 403, gRPC PERMISSION_DENIED: an API that is turned off
    ├── UnauthenticatedError           no     HTTP 401, gRPC UNAUTHENTICATED: no or wrong credentials
    ├── DiscoveryError                 yes    a service-discovery refresh failed; the last targets stay
    │   ├── HTTPDiscoveryError         yes    (ingest/discovery/http.py)
    │   └── KubeAPIError               yes    (ingest/discovery/kubeclient.py)
    ├── QueryError                     no
    │   ├── BadQueryError              no     HTTP 400 bad_data, gRPC INVALID_ARGUMENT
    │   │   └── UnsupportedQueryError  no     a PromQL feature not implemented (querier/value.py)
    │   ├── QueryExecutionError        no     HTTP 422 execution, gRPC FAILED_PRECONDITION
    │   ├── QueryTimeoutError          no     HTTP 503 timeout, gRPC DEADLINE_EXCEEDED
    │   └── QueryUnavailableError      yes    HTTP 503 unavailable, gRPC UNAVAILABLE (a shard down, abort)
    └── StorageError                   no
        ├── InvalidWriteError          no     a batch the shard can never accept (INVALID_ARGUMENT)
        │   └── SeriesLimitError       no     over a series limit (shards/db.py)
        ├── ShardUnavailableError      yes    the shard or its Redis cannot be reached (UNAVAILABLE)
        └── ShardOverloadedError       yes    the shard sheds load (RESOURCE_EXHAUSTED)

Subclasses defined next to the code that raises them are listed with their module. Outside the tree
on purpose: exceptions private to one module for its own control flow, which never leave it
(``_LineError``, ``_ScrapeError``, ``_Gone``, ``_BlocksChanged``, ``_RegexError``, a ``ValueError``
for pydantic), and the command-line tools' own (``shardmon.cli.UsageError``, exit code 2;
``querier.promqltest.ScriptError``, a malformed test script; ``shardmon.launcher.Interrupted``, a
``shardmon up`` stopped while starting), which end a command and reach no service edge.
``tests/unit/model/test_errors.py`` keeps this list true.
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


class BadRequestError(ShardmonError):
    """A request that can never succeed as sent (a body that cannot be read, a parameter out of
    bounds): HTTP 400, gRPC INVALID_ARGUMENT. The message says what is wrong, naming the limit or the
    configuration field when one is at stake."""


class PermissionDeniedError(ShardmonError):
    """The caller may not do this here: an admin or lifecycle API that the configuration leaves off
    (``web.enable_admin_api``, ``web.enable_lifecycle``). HTTP 403, gRPC PERMISSION_DENIED; the
    message names the configuration field that turns it on."""


class UnauthenticatedError(ShardmonError):
    """No credentials, or wrong ones: HTTP 401, gRPC UNAUTHENTICATED."""


class DiscoveryError(ShardmonError):
    """A service-discovery refresh failed; the targets last found stay until the next refresh."""

    retryable = True


class QueryError(ShardmonError):
    """Base of the errors a query can end with."""

    error_type = "execution"


class BadQueryError(QueryError):
    """The query or its parameters are malformed."""

    error_type = "bad_data"


class QueryExecutionError(QueryError):
    """The query is well formed but cannot be evaluated (e.g. many-to-many matching)."""

    error_type = "execution"


class QueryTimeoutError(QueryError):
    """The query ran longer than its timeout."""

    error_type = "timeout"


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
