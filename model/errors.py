"""The error tree of Shardmon.

Every error says whether retrying can help. Lower-layer exceptions (gRPC, Redis, HTTP) are
translated into this tree exactly once, at the edge that meets them (``raise ... from exc``), and
back into a transport status exactly once, by one table per transport (gRPC: ``model/grpcstatus.py``).

::

    ShardmonError                      .retryable
    ├── ConfigError                    no     a bad configuration; names the field path
    │   ├── KubeConfigError            no     no Kubernetes API server or credentials (ingest/discovery)
    │   └── RuleFileError              no     a rule file rulefmt would refuse; .errors lists rulefmt's messages
    ├── TargetError                    no     a target Prometheus would not create (ingest/target.py)
    ├── ExpositionError                no     a malformed scrape body; names the line
    │   └── BodyError                  no     ... with what Prometheus counts before refusing it (ingest/exposition/body.py)
    ├── LineError                      no     one malformed exposition line, before the caller names the line: the
    │                                          body parser and the backfill reader raise an ExpositionError for it
    │                                          (ingest/exposition/tokens.py)
    ├── ScrapeError                    no     a scrape that got no body; becomes the target's last_error, never
    │                                          leaves the scrape loop (ingest/scrape_http.py)
    ├── RegexError (also a ValueError)  no     a regex RE2 rejects; names it. Callers translate it: a
    │                                          BadQueryError in a query, a field error (ConfigError)
    │                                          in a config
    ├── TemplateError                  no     a Go template (alert labels/annotations) in Go's words
    ├── HistogramNotationError (also a ValueError)  no  a {{...}} histogram of a test script; .pos names
    │                                          the column (model/histogram_notation.py)
    │   ├── TemplateParseError         no     its syntax (model/gotemplate/parser.py)
    │   ├── TemplateExecError          no     its execution (model/gotemplate/executor.py)
    │   ├── TemplateFunctionError      no     a template function's Go error, inside the executor
    │   │                                      (it becomes a TemplateExecError "error calling NAME: ...")
    │   └── TemplateExpansionError     no     Prometheus's Expand error text (model/gotemplate/prometheus.py)
    ├── BadRequestError                no     HTTP 400, gRPC INVALID_ARGUMENT: a request that can never succeed
    │   ├── RemoteWriteError           no     a remote-write body that cannot be read (HTTP 400)
    │   │   └── BodyTooLargeError      no     over the receiver's size limit (HTTP 413)
    │   ├── PushError                  no     a refused Pushgateway-API push (HTTP 400)
    │   │   └── PushGroupsLimitError   no     a new group beyond receiver.max_push_groups (HTTP 400)
    │   └── FieldSelectorError         no     a bad fieldSelector of the Kubernetes metrics APIs (k8sapi/fields.py)
    ├── PermissionDeniedError          no     HTTP 403, gRPC PERMISSION_DENIED: an API that is turned off
    ├── UnauthenticatedError           no     HTTP 401, gRPC UNAUTHENTICATED: no or wrong credentials
    │   └── AuthError                  no     ... refused by the Kubernetes metrics APIs; .reason (k8sapi/auth.py)
    ├── DiscoveryError                 yes    a service-discovery refresh failed; the last targets stay
    │   ├── HTTPDiscoveryError         yes    (ingest/discovery/http.py)
    │   └── KubeAPIError               yes    (ingest/discovery/kubeclient.py)
    ├── NotificationError              yes    an Alertmanager did not take a batch of alerts (non-2xx, timeout,
    │                                          connection); counted, never leaves the notifier (ingest/notifier.py)
    ├── QueryError                     no
    │   ├── BadQueryError              no     HTTP 400 bad_data, gRPC INVALID_ARGUMENT
    │   │   └── UnsupportedQueryError  no     a PromQL feature not implemented (model/promql/value.py)
    │   ├── QueryExecutionError        no     HTTP 422 execution, gRPC FAILED_PRECONDITION
    │   │   ├── QueryLimitError        no     ... over querier.max_samples / max_series (.limit names it)
    │   │   └── RuleError              no     a rule's own evaluation error: duplicate label sets, over the
    │   │                                      group's limit (querier/rules/recording.py)
    │   ├── QueryTimeoutError          no     HTTP 503 timeout, gRPC DEADLINE_EXCEEDED
    │   ├── QueryCanceledError         no     HTTP 499 canceled, gRPC CANCELLED (the client went away)
    │   └── QueryUnavailableError      yes    HTTP 503 unavailable, gRPC UNAVAILABLE (a shard down, abort)
    └── StorageError                   no
        ├── InvalidWriteError          no     a batch the shard can never accept (INVALID_ARGUMENT)
        │   └── SeriesLimitError       no     over a series limit (shards/limits.py)
        ├── ShardUnavailableError      yes    the shard or its Redis cannot be reached (UNAVAILABLE)
        │   ├── ShardDataLostError     yes    the shard's Redis lost data: writes refused until recovered
        │   └── ShardNotDurableError   yes    the shard's Redis runs without the AOF the config asks for
        └── ShardOverloadedError       yes    the shard sheds load (RESOURCE_EXHAUSTED)

Subclasses defined next to the code that raises them are listed with their module. Outside the tree
on purpose: exceptions private to one module for its own control flow, which never leave it
(``_Gone``, ``_BlocksChanged``, a ``ValueError``
for pydantic), and the command-line tools' own (``shardmon.cli_common.UsageError``, exit code 2;
``shardmon.querier.promqltest.ScriptError``, a malformed test script;
``shardmon.querier.rules.unittest.TestFileError``, a malformed rule test file; the process harness's
``shardmon.procs.Interrupted``, a ``shardmon up`` stopped while starting, and ``shardmon.procs.ChildFailed``,
a child process that exited or was not ready in time), which end a command and reach no service edge.
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


class RuleFileError(ConfigError):
    """A rule file that Prometheus's rulefmt would refuse. ``errors`` holds each problem as rulefmt words it
    (``FILE: 3:9: group "g", rule 1, "x": could not parse expression: ...``); the message joins them."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class ExpositionError(ShardmonError):
    """A scrape body that is not valid exposition text. ``line`` is 1-based; ``where`` replaces
    "line <n>" in the message for bodies without lines (the protobuf format names the metric family)."""

    def __init__(self, message: str, line: int, where: str = "") -> None:
        super().__init__(f"{where or f'line {line}'}: {message}")
        self.line = line


class RegexError(ShardmonError, ValueError):
    """A user's regular expression that RE2 (Go's syntax) rejects; ``pattern`` is the expression, ``reason``
    why, in Go's words. A ValueError, so config validators report it under the field's path."""

    def __init__(self, message: str, *, pattern: str, reason: str) -> None:
        super().__init__(message)
        self.pattern = pattern
        self.reason = reason


class HistogramNotationError(ShardmonError, ValueError):
    """A native histogram in the test scripts' ``{{...}}`` notation that does not parse; ``pos`` is the 0-based
    column where it goes wrong."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"at position {pos}: {message}")
        self.pos = pos


class BadRequestError(ShardmonError):
    """A request (body, path, parameters) that can never succeed as sent, however often it is sent (a
    remote-write body that does not decode, a push refused, a parameter out of bounds): HTTP 400, gRPC
    INVALID_ARGUMENT. The message says what is wrong, naming the limit or the configuration field when
    one is at stake."""


class RemoteWriteError(BadRequestError):
    """A remote-write body that cannot be read as a whole (snappy, protobuf): HTTP 400, never retried.

    ``reason`` names the refusal in the receiver's ``shardmon_receiver_refused_requests_total``.
    """

    reason = "bad_body"


class BodyTooLargeError(RemoteWriteError):
    """A body over a size limit, refused before it is decoded: HTTP 413, which senders do not retry.

    ``size`` is the body's size in bytes (compressed, or decoded as its snappy header declares), ``limit``
    the limit it exceeds, ``field`` the configuration field that sets it; ``reason`` is
    ``body_too_large`` (compressed) or ``decoded_body_too_large``.
    """

    def __init__(self, message: str, *, size: int, limit: int, field: str, decoded: bool) -> None:
        super().__init__(message)
        self.size, self.limit, self.field = size, limit, field
        self.reason = "decoded_body_too_large" if decoded else "body_too_large"


class PushError(BadRequestError):
    """A push to the Pushgateway API refused with HTTP 400; the message says why, ``reason`` names it
    for ``shardmon_receiver_refused_requests_total`` (``bad_push``, or the label limit exceeded)."""

    reason = "bad_push"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PushGroupsLimitError(PushError):
    """A push that would create a group beyond ``receiver.max_push_groups`` (existing groups can
    always be replaced or deleted)."""

    reason = "max_push_groups"


class PermissionDeniedError(ShardmonError):
    """The caller may not do this here: an admin or lifecycle API that the configuration leaves off
    (``web.enable_admin_api``, ``web.enable_lifecycle``). HTTP 403, gRPC PERMISSION_DENIED; the
    message names the configuration field that turns it on."""


class LifecycleDisabledError(PermissionDeniedError):
    """``POST /-/reload`` refused while ``web.enable_lifecycle`` is off: answered as Prometheus's, a 403 in
    plain text (the JSON APIs' 403s keep their envelope)."""


class UnauthenticatedError(ShardmonError):
    """No credentials, or wrong ones: HTTP 401, gRPC UNAUTHENTICATED."""


class DiscoveryError(ShardmonError):
    """A service-discovery refresh failed; the targets last found stay until the next refresh."""

    retryable = True


class NotificationError(ShardmonError):
    """An Alertmanager did not take a batch of alerts (a non-2xx answer, a timeout, no connection); the
    notifier counts it per Alertmanager, and the batch is dropped unless another Alertmanager took it."""

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


class ShardDataLostError(ShardUnavailableError):
    """The shard's Redis lost data it had acknowledged (its identity key is gone, its epoch changed, or it
    rolled back to an older state): the shard refuses writes until an operator recovers it (README, "If a
    shard's Redis loses its data"). Retryable: senders keep the samples and retry, so nothing they have
    not had acknowledged is lost while the operator decides; the same write succeeds once the shard is
    recovered."""


class ShardNotDurableError(ShardUnavailableError):
    """The shard's Redis runs without an append-only file although ``shards.wal_appendfsync`` asks for
    one, and the shard could not turn it on (CONFIG refused): writes are refused rather than acknowledged
    without durability. Retryable: the shard checks again every few seconds and accepts writes once
    Redis has its AOF."""


class ShardOverloadedError(StorageError):
    """The shard is shedding load; retry later with backoff."""

    retryable = True


class TemplateError(ShardmonError):
    """A Go template (alert labels and annotations) that does not parse or does not execute; the message
    is Go's text/template error (``template: NAME:LINE:COL: executing ...``)."""


class TemplateParseError(TemplateError):
    """A template's syntax error, found when it is parsed (``promtool check rules`` reports these)."""


class TemplateExecError(TemplateError):
    """An error while a template executes (a function's error, a bad field, a wrong argument type)."""


class TemplateFunctionError(TemplateError):
    """A template function's error (Go's ``error`` result); the executor reports it as a
    :class:`TemplateExecError` ``error calling NAME: MESSAGE``. Never leaves the executor."""


class TemplateExpansionError(TemplateError):
    """Prometheus's ``Expand`` error: ``error parsing template NAME: ...`` or ``error executing template
    NAME: ...``; an alert's annotation becomes ``<error expanding template: MESSAGE>``."""
