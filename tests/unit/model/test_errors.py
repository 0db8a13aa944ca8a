"""The error tree and its one gRPC status table: every error crosses a real gRPC call and comes back as
the class the caller of that API expects; every error class of the code is in the tree (or private)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from shardmon.model import errors
from shardmon.model.grpcstatus import QUERY, SHARD_READ, SHARD_WRITE, error_of, status_of, trailers_of
from tests.unit.floors import FLOORS, ROOT

C = grpc.StatusCode

# What a server raises -> the status on the wire -> what a client of each API gets back.
CASES = [
    (errors.BadQueryError("parse error at char 3"), C.INVALID_ARGUMENT,
     [(QUERY, errors.BadQueryError), (SHARD_READ, errors.BadQueryError)]),
    (errors.QueryTimeoutError("query timed out"), C.DEADLINE_EXCEEDED,
     [(QUERY, errors.QueryTimeoutError), (SHARD_READ, errors.ShardUnavailableError)]),
    (errors.QueryExecutionError("many-to-many matching"), C.FAILED_PRECONDITION, [(QUERY, errors.QueryExecutionError)]),
    (errors.QueryUnavailableError("shard 1 failed"), C.UNAVAILABLE, [(QUERY, errors.QueryUnavailableError)]),
    (errors.QueryLimitError("query processing would load too many samples into memory in query execution",
                            "max_samples"), C.FAILED_PRECONDITION,
     [(QUERY, errors.QueryLimitError), (SHARD_READ, errors.StorageError)]),
    (errors.QueryCanceledError("query canceled by the client"), C.CANCELLED,
     [(QUERY, errors.QueryCanceledError), (SHARD_READ, errors.ShardUnavailableError)]),
    (errors.InvalidWriteError("out of bounds"), C.INVALID_ARGUMENT, [(SHARD_WRITE, errors.InvalidWriteError)]),
    (errors.ShardOverloadedError("shedding load"), C.RESOURCE_EXHAUSTED,
     [(SHARD_WRITE, errors.ShardOverloadedError), (SHARD_READ, errors.ShardOverloadedError),
      (QUERY, errors.QueryUnavailableError)]),
    (errors.ShardUnavailableError("redis down"), C.UNAVAILABLE,
     [(SHARD_WRITE, errors.ShardUnavailableError), (SHARD_READ, errors.ShardUnavailableError)]),
    (errors.BadRequestError("bad body"), C.INVALID_ARGUMENT, [(SHARD_WRITE, errors.InvalidWriteError)]),
    (errors.BodyTooLargeError("body too large", size=2, limit=1, field="receiver.max_decoded_body_bytes",
                              decoded=True), C.INVALID_ARGUMENT, [(SHARD_WRITE, errors.InvalidWriteError)]),
    (errors.RegexError('invalid regex "(": missing )', pattern="(", reason="missing )"), C.INVALID_ARGUMENT,
     [(SHARD_READ, errors.BadQueryError), (QUERY, errors.BadQueryError)]),
    (errors.ShardDataLostError("shard 0: its Redis lost data"), C.UNAVAILABLE,
     [(SHARD_WRITE, errors.ShardUnavailableError), (SHARD_READ, errors.ShardUnavailableError)]),
    (errors.ShardNotDurableError("shard 0: no AOF"), C.UNAVAILABLE, [(SHARD_WRITE, errors.ShardUnavailableError)]),
    (errors.PermissionDeniedError("admin APIs disabled"), C.PERMISSION_DENIED,
     [(SHARD_WRITE, errors.PermissionDeniedError), (SHARD_READ, errors.PermissionDeniedError),
      (QUERY, errors.PermissionDeniedError)]),
    (errors.UnauthenticatedError("wrong password"), C.UNAUTHENTICATED,
     [(SHARD_WRITE, errors.UnauthenticatedError), (SHARD_READ, errors.UnauthenticatedError),
      (QUERY, errors.UnauthenticatedError)]),
    (errors.ConfigError("shards.nodes: no shard 9"), C.FAILED_PRECONDITION,
     [(QUERY, errors.QueryExecutionError), (SHARD_WRITE, errors.StorageError)]),
    (ValueError("a bug"), C.INTERNAL, [(QUERY, errors.QueryExecutionError), (SHARD_WRITE, errors.StorageError)]),
]


@pytest.fixture(scope="module")
def channel():
    """A real gRPC server on loopback whose one method raises the error named by the request, and
    answers with the table's status, as Shardmon's servers do."""
    by_name = {type(exc).__name__: exc for exc, _, _ in CASES}

    def fail(request: bytes, context):
        exc = by_name[request.decode()]
        context.set_trailing_metadata(trailers_of(exc))
        context.abort(status_of(exc), str(exc))

    handler = grpc.method_handlers_generic_handler(
        "test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(fail)})
    server = grpc.server(ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield ch
    ch.close()
    server.stop(None)


def _call(channel, exc: BaseException) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/test.Errors/Fail")(type(exc).__name__.encode(), timeout=10)
    return info.value


@pytest.mark.parametrize("exc,code,back", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_an_error_crosses_grpc_with_its_status_and_comes_back_as_the_callers_class(channel, exc, code, back):
    rpc_error = _call(channel, exc)
    assert rpc_error.code() is code
    for api, cls in back:
        got = error_of(rpc_error, None, api)
        assert type(got) is cls, (api.name, got)
        assert got.retryable is cls.retryable
        assert str(exc) in str(got)


def test_messages_name_the_call_and_the_code_for_shards_and_are_the_servers_own_for_queries(channel):
    denied = _call(channel, errors.PermissionDeniedError("admin APIs disabled"))
    got = error_of(denied, "shard 0 (127.0.0.1:1) Flush", SHARD_WRITE)
    assert str(got) == "shard 0 (127.0.0.1:1) Flush: PERMISSION_DENIED: admin APIs disabled"
    bad = _call(channel, errors.BadQueryError("parse error at char 3"))
    assert str(error_of(bad, None, QUERY)) == "parse error at char 3"  # as the HTTP API says it
    internal = _call(channel, ValueError("a bug"))
    assert str(error_of(internal, None, QUERY)) == "INTERNAL: a bug"  # an unexpected code says which


def test_a_query_over_a_limit_comes_back_naming_the_limit_with_the_servers_message(channel):
    over = _call(channel, errors.QueryLimitError("x", "max_samples"))  # by class name: the CASES' one
    got = error_of(over, None, QUERY)
    assert isinstance(got, errors.QueryLimitError) and got.limit == "max_samples"
    assert str(got) == "query processing would load too many samples into memory in query execution"
    # A plain execution error (no trailer) stays one, with the server's words alone.
    plain = error_of(_call(channel, errors.QueryExecutionError("x")), None, QUERY)
    assert type(plain) is errors.QueryExecutionError and str(plain) == "many-to-many matching"


def test_retryable_statuses_are_retryable_errors_for_a_writer(channel):
    for exc in (errors.ShardUnavailableError("x"), errors.ShardOverloadedError("y"), errors.QueryTimeoutError("z")):
        assert error_of(_call(channel, exc), "w", SHARD_WRITE).retryable
    for exc in (errors.InvalidWriteError("x"), errors.PermissionDeniedError("y"), errors.UnauthenticatedError("z")):
        assert not error_of(_call(channel, exc), "w", SHARD_WRITE).retryable


def test_every_error_class_that_crosses_an_edge_has_a_status():
    crossing = [errors.BadRequestError, errors.RemoteWriteError, errors.PushError, errors.PushGroupsLimitError,
                errors.PermissionDeniedError, errors.UnauthenticatedError, errors.ConfigError, errors.BadQueryError, errors.QueryExecutionError, errors.QueryTimeoutError,
                errors.QueryUnavailableError, errors.InvalidWriteError, errors.ShardUnavailableError,
                errors.ShardOverloadedError, errors.ShardDataLostError, errors.ShardNotDurableError]
    for cls in crossing:
        assert status_of(cls("x")) is not C.INTERNAL, cls
    assert status_of(errors.RegexError("x", pattern="(", reason="y")) is C.INVALID_ARGUMENT
    assert status_of(errors.QueryLimitError("x", "max_series")) is C.FAILED_PRECONDITION
    assert status_of(errors.QueryCanceledError("x")) is C.CANCELLED
    assert status_of(errors.BodyTooLargeError("x", size=2, limit=1, field="f", decoded=False)) is C.INVALID_ARGUMENT


# Exceptions outside the tree on purpose (see model/errors.py's docstring): the command-line tools' own.
OUTSIDE_THE_TREE = {"shardmon.cli_common.UsageError", "shardmon.querier.promqltest.ScriptError",
                    "shardmon.querier.rules.unittest.TestFileError",
                    "shardmon.procs.Interrupted", "shardmon.procs.ChildFailed"}


def test_every_error_class_of_the_code_is_in_the_tree_or_private():
    found, outside = [], []
    for folder, package in FLOORS.items():
        for info in pkgutil.walk_packages([str(ROOT / folder)], prefix=f"{package}."):
            if info.name.endswith("__main__") or ".pb." in info.name:
                continue
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                    continue
                found.append(f"{module.__name__}.{name}")
                if issubclass(cls, errors.ShardmonError) or name.startswith("_"):
                    continue
                outside.append(f"{module.__name__}.{name}")
    assert len(found) > 20
    assert sorted(outside) == sorted(OUTSIDE_THE_TREE)
