"""The engine's tests again, on a real redis-server: every test of tests/unit/shards/test_engine_*.py
(writes, recovery, data loss, limits, retention, compaction, FORMAT.md's keys) runs here on
:class:`~shardmon.shards.redis_store.RedisStore`, so the Redis store and the in-memory one the unit tests use
are held to one behaviour.

The tests are imported below; pytest collects them here, where they get this module's ``backend``
fixture (one redis-server for the module, flushed before each test) instead of the unit tests'.
"""

from __future__ import annotations

import pytest
import redis

from shardmon.model.errors import ShardUnavailableError
from shardmon.shards.redis_store import RedisStore
from tests.integration.procs import free_port, redis_proc
from tests.unit.shards.enginekit import PREFIX, Backend
from tests.unit.shards.test_engine_histograms import *  # noqa: F403
from tests.unit.shards.test_engine_keys import *  # noqa: F403
from tests.unit.shards.test_engine_limits import *  # noqa: F403
from tests.unit.shards.test_engine_recovery import *  # noqa: F403
from tests.unit.shards.test_engine_retention import *  # noqa: F403
from tests.unit.shards.test_engine_write import *  # noqa: F403


class RedisBackend(Backend):
    """Shard 0's keys in a real Redis."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = redis.Redis.from_url(url)

    def store(self) -> RedisStore:
        return RedisStore(self.url, 0)

    def keys(self) -> set[str]:
        return {k.decode() for k in self.redis.scan_iter(match=PREFIX + "*")}

    def get(self, key: str) -> bytes | None:
        return self.redis.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.redis.set(key, value)

    def flushall(self) -> None:
        self.redis.flushall()

    def snapshot(self) -> dict[bytes, bytes]:
        return {k: self.redis.dump(k) for k in self.redis.scan_iter()}

    def restore(self, snapshot: dict[bytes, bytes]) -> None:  # type: ignore[override]
        self.redis.flushall()
        for key, dump in snapshot.items():
            self.redis.restore(key, 0, dump)

    def fail(self, store, operation: str, times: int = 1) -> None:
        real = getattr(store, operation)
        left = [times]

        async def failing(*args, **kw):
            if left[0] > 0:
                left[0] -= 1
                raise ShardUnavailableError(f"redis: {operation} failed (injected)")
            return await real(*args, **kw)

        setattr(store, operation, failing)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine-redis")
    port = free_port()
    (tmp / "logs").mkdir()
    proc = redis_proc(port, tmp / "redis", tmp / "logs").up()
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


@pytest.fixture()
def backend(redis_url):
    b = RedisBackend(redis_url)
    b.flushall()
    yield b
    b.redis.close()
