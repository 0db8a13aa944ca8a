"""The querier process: the PromQL engine over the shard fan-out, served over HTTP and gRPC."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shardmon.model import grpcauth
from shardmon.model.config import Config
from shardmon.model.gc_tuning import tune_for_queries
from shardmon.model.httpclient import InternalClient
from shardmon.model.httpserver import listen
from shardmon.model.pb import query_pb2, query_pb2_grpc
from shardmon.model.shutdown import wait_until_stopped
from shardmon.querier.cluster_status import ClusterStatus
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.grpc_api import QueryService
from shardmon.querier.http_api import PrometheusAPI
from shardmon.querier.promql import Engine
from shardmon.querier.slow_queries import SlowQueryLog
from shardmon.querier.status_api import StatusAPI
from shardmon.shards.client import ShardClient, ShardConnection

log = logging.getLogger(__name__)


def build(config: Config) -> tuple[Engine, FanoutQuerier]:
    """The engine over the fan-out to the configured shards, for a process that evaluates PromQL (the
    querier, a ruler); sets that process's garbage-collector thresholds for it (``model/gc_tuning.py``)."""
    tune_for_queries()
    q = config.querier
    fanout = FanoutQuerier(
        [ShardClient(n.id, n.address, ShardConnection.of(config)) for n in config.shards.nodes],
        partial_response=q.partial_response,
        timeout_s=q.query_timeout / 1000,
        replication_factor=config.shards.replication_factor,
        response_timeout_s=q.shard_response_timeout / 1000,
    )
    engine = Engine(
        fanout,
        lookback_delta_ms=q.lookback_delta,
        timeout_ms=q.query_timeout,
        subquery_step_ms=q.subquery_step or config.global_.evaluation_interval,
        max_samples=q.max_samples,
        max_series=q.max_series,
        max_query_length=q.max_query_length,
        max_query_depth=q.max_query_depth,
        aggregation_pushdown=q.aggregation_pushdown,
        experimental_functions=q.enable_experimental_functions,
    )
    return engine, fanout


async def serve(config: Config, *, stop: asyncio.Event | None = None, config_file: str | None = None) -> None:
    """Serve the HTTP and gRPC APIs until ``stop`` is set (or SIGTERM/SIGINT); ``config_file``: where
    ``config`` was read from (``/api/v1/status/flags``'s ``config.file``)."""
    q = config.querier
    web_config = config.web_config()
    engine, fanout = build(config)

    slow_queries = SlowQueryLog.from_config(q)
    api = PrometheusAPI(engine, fanout, default_timeout_ms=q.query_timeout, ingest_api=config.ingest.http_address,
                        ingest_client=InternalClient.from_config(config.internal_client),
                        # A ruler runs only when there are rule files (shardmon up starts one then): without,
                        # /api/v1/rules and /api/v1/alerts answer empty, as a Prometheus without rules.
                        rules_api=config.rules.http_address if config.rule_files else None,
                        status=StatusAPI(config, config_file=config_file),
                        slow_queries=slow_queries, cluster=ClusterStatus.from_config(config, slow_queries))
    runner = await listen(api.app(web_config), q.http_address, "querier.http_address", web_config)

    server = grpc.aio.server(interceptors=grpcauth.server_interceptors("querier", web_config))
    query_pb2_grpc.add_QueryServicer_to_server(QueryService(engine, q.query_timeout, fanout, slow_queries), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (query_pb2.DESCRIPTOR.services_by_name["Query"].full_name, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server,
    )
    grpcauth.add_port(server, q.grpc_address, web_config, "querier.grpc_address")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("querier serving HTTP on %s and gRPC on %s", q.http_address, q.grpc_address)

    await wait_until_stopped(stop)
    await server.stop(grace=1)
    await runner.cleanup()
    fanout.close()
    log.info("querier stopped")
