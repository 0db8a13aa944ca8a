"""Series limits, the shard's own metrics and the WAL's fsync policy, through a shard process on a real
redis-server: the gRPC status of a limit, the /metrics names, the fsync policy reaching Redis.

The retention, compaction and limit tests that drive a ShardDB directly are in
tests/unit/shards/test_engine_*.py, and run on a real Redis in test_engine_on_redis.py.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import redis
import yaml

from shardmon.model.errors import InvalidWriteError
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import request
from tests.integration.procs import free_port, redis_proc, shardmon_proc, wait_until
from tests.unit.shards.enginekit import batch as _batch

# -- the shard process: status of a limit, /metrics, fsync policy ----------------------------------


@pytest.fixture()
def shard_proc(tmp_path):
    redis_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    raw = {"shards": {
        "nodes": [{"id": 0, "address": f"127.0.0.1:{grpc_port}", "redis_url": f"redis://127.0.0.1:{redis_port}/0",
                   "metrics_address": f"127.0.0.1:{metrics_port}"}],
        "block_duration": "2h", "max_active_series": 5, "wal_appendfsync": "always",
    }, "web": {"enable_admin_api": True}}  # Flush is an admin RPC
    cfg = tmp_path / "shardmon.yml"
    cfg.write_text(yaml.safe_dump(raw))
    logs = tmp_path / "logs"
    logs.mkdir()
    r = redis_proc(redis_port, tmp_path / "redis", logs).up()
    s = shardmon_proc("shard-0", ["shard", "--id", "0"], cfg, logs, grpc_port).up()
    client = ShardClient(0, f"127.0.0.1:{grpc_port}")
    yield client, redis_port, metrics_port, s
    client.close()
    s.stop()
    r.stop()


def test_a_shard_answers_a_series_limit_with_invalid_argument_and_exposes_its_metrics(shard_proc):
    client, redis_port, metrics_port, proc = shard_proc
    assert client.write("ok", _batch(3, np.array([1000], np.int64))).samples_appended == 3
    with pytest.raises(InvalidWriteError, match="INVALID_ARGUMENT.*shards.max_active_series = 5") as e:
        client.write("over", _batch(8, np.array([2000], np.int64)))
    assert isinstance(e.value.__cause__, grpc.RpcError)
    assert not e.value.retryable
    assert client.flush() == 1
    text = request("GET", f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for name in ("shardmon_shard_series", "shardmon_shard_head_series", "shardmon_shard_samples_appended_total",
                 'shardmon_shard_samples_rejected_total{reason="series_limit"} 3.0',
                 'shardmon_shard_samples_rejected_total{reason="metric_series_limit"} 0.0',
                 "shardmon_shard_chunks 5.0", "shardmon_shard_blocks 1.0", "shardmon_shard_block_bytes",
                 "shardmon_shard_wal_entries", "shardmon_shard_block_bytes_per_sample",
                 "shardmon_shard_replay_duration_seconds", 'shardmon_shard_retention_deletions_total{reason="time"}',
                 'shardmon_shard_retention_deletions_total{reason="size"}', "shardmon_shard_compactions_total"):
        assert name in text, name
    # The shard set its Redis to the configured fsync policy (it was started with everysec).
    r = redis.Redis(port=redis_port)
    try:
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        r.close()
    assert "appendfsync always" in wait_until(lambda: proc.log_path.read_text(), 5, "the shard log")
