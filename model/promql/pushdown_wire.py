"""The aggregation push-down on the wire: :class:`~shardmon.model.promql.pushdown.AggregateSpec` as the
``Shard.Aggregate`` request and :class:`~shardmon.model.promql.pushdown.Partial` as its response
(``shard.proto``), arrays as raw little-endian bytes. Matchers travel as the Series call's do (the shard
client and server convert them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.errors import BadQueryError
from shardmon.model.labels import Matcher
from shardmon.model.pb import shard_pb2
from shardmon.model.promql.pushdown import PUSHDOWN_FUNCTIONS, PUSHDOWN_OPS, ROWS, AggregateSpec, Partial
from shardmon.model.promql.pushdown_replicas import Placement, ReplicaDigest

_F64, _I64 = np.dtype("<f8"), np.dtype("<i8")


def request_of(spec: AggregateSpec, matchers_pb) -> shard_pb2.AggregateRequest:
    """The request for ``spec`` (``matchers_pb``: its matchers already converted)."""
    req = shard_pb2.AggregateRequest(
        matchers=matchers_pb, start_ms=spec.start_ms, end_ms=spec.end_ms,
        times_ms=np.ascontiguousarray(spec.times_ms, dtype=_I64).tobytes(), function=spec.function,
        range_ms=spec.range_ms, lookback_ms=spec.lookback_ms, one_name=spec.one_name, op=spec.op,
        grouping=list(spec.grouping), without=spec.without, label=spec.label)
    if spec.param is not None:
        req.param = np.ascontiguousarray(spec.param, dtype=_F64).tobytes()
    if spec.placement is not None:
        req.shard_ids.extend(spec.placement.shard_ids)
        req.replication_factor = spec.placement.replication_factor
        req.live.extend(spec.placement.live)
    return req


def spec_of(req: shard_pb2.AggregateRequest, matchers: Sequence[Matcher]) -> AggregateSpec:
    """The spec of a request; :class:`BadQueryError` for one no querier sends."""
    if req.op not in PUSHDOWN_OPS and req.op != ROWS:
        raise BadQueryError(f"aggregation {req.op!r} cannot be pushed down")
    if req.function and req.function not in PUSHDOWN_FUNCTIONS:
        raise BadQueryError(f"function {req.function!r} cannot be pushed down")
    times = np.frombuffer(req.times_ms, dtype=_I64).astype(np.int64)
    if times.shape[0] == 0:
        raise BadQueryError("an aggregation needs at least one step")
    param = None
    if req.op in ("topk", "bottomk"):
        param = np.frombuffer(req.param, dtype=_F64).astype(np.float64)
        if param.shape[0] != times.shape[0]:
            raise BadQueryError("topk/bottomk needs one k per step")
    placement = None
    if req.shard_ids:
        if req.replication_factor < 1 or len(set(req.shard_ids)) != len(req.shard_ids) \
                or not set(req.live) <= set(req.shard_ids):
            raise BadQueryError("a placement needs distinct shard ids, a replication factor and live shards among them")
        placement = Placement(tuple(req.shard_ids), req.replication_factor, tuple(req.live))
    return AggregateSpec(tuple(matchers), req.start_ms, req.end_ms, times, req.op, tuple(req.grouping), req.without,
                         req.function, req.range_ms, req.lookback_ms, req.one_name, param, req.label, placement)


def response_of(partial: Partial, warnings: Sequence[str] = ()) -> shard_pb2.AggregateResponse:
    resp = shard_pb2.AggregateResponse(
        keys=partial.keys, first_keys=partial.first_keys,
        values=np.ascontiguousarray(partial.values, dtype=_F64).tobytes(),
        present=np.ascontiguousarray(partial.present, dtype=np.uint8).tobytes(),
        ties=partial.ties, series=partial.series, samples=partial.samples, warnings=list(warnings),
        misplaced=partial.misplaced,
        digests=[shard_pb2.ReplicaDigest(owners=d.owners, series=d.series, samples=d.samples, digest=d.digest)
                 for d in partial.digests])
    if partial.counts is not None:
        resp.counts = np.ascontiguousarray(partial.counts, dtype=_F64).tobytes()
    return resp


def partial_of(resp: shard_pb2.AggregateResponse, n_steps: int) -> Partial:
    shape = (len(resp.keys), n_steps)
    values = np.frombuffer(resp.values, dtype=_F64).astype(np.float64).reshape(shape)
    present = np.frombuffer(resp.present, dtype=np.uint8).astype(bool).reshape(shape)
    counts = np.frombuffer(resp.counts, dtype=_F64).astype(np.float64).reshape(shape) if resp.counts else None
    digests = [ReplicaDigest(tuple(d.owners), d.series, d.samples, d.digest) for d in resp.digests]
    return Partial(list(resp.keys), values, present, list(resp.first_keys), counts, resp.ties, resp.series,
                   resp.samples, digests, resp.misplaced, resp.histograms)


__all__ = ["partial_of", "request_of", "response_of", "spec_of"]
