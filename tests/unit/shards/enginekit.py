"""What the tests of the shard's engine (``test_engine_*.py``) share: sample data, reading a ShardDB
back, and the *backend* they run on.

Each engine test takes a ``backend`` fixture: where the shard's keys live, and how to reach them
from outside the engine (list the keys, lose them, roll them back, make a store call fail). Under
tests/unit it is a :class:`MemoryBackend` (the in-memory store: the tests run in seconds);
tests/integration/test_engine_on_redis.py runs the very same tests on a real redis-server, so the
two stores are held to one behaviour.
"""

from __future__ import annotations

import numpy as np

from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import SampleBatch
from shardmon.shards.engine import ShardDB
from shardmon.shards.memory_store import MemoryRedis, MemoryStore
from shardmon.shards.store import Store

H = 3_600_000
D = 2 * H
STEP = 60_000  # one sample a minute
PREFIX = "shardmon:0:"


def series(n: int, metric: str = "m", **extra) -> tuple[list[Labels], list[bytes], np.ndarray]:
    labels = [Labels.from_dict({"__name__": metric, "i": str(i), **extra}) for i in range(n)]
    return labels, [ls.canonical() for ls in labels], np.array([ls.series_id() for ls in labels], np.uint64)


def batch(n_series: int, ts: np.ndarray, value_of=lambda i, t: float(i * 1000 + t // STEP), metric: str = "m",
          first: int = 0) -> SampleBatch:
    """Series ``first .. first + n_series - 1`` of ``metric``, each with a sample at every ``ts``."""
    labels, keys, ids = series(first + n_series, metric)
    keys, ids = keys[first:], ids[first:]
    refs = np.repeat(np.arange(n_series, dtype=np.uint32), ts.shape[0])
    all_ts = np.tile(ts.astype(np.int64), n_series)
    vals = np.array([value_of(first + int(r), int(t)) for r, t in zip(refs, all_ts)], np.float64)
    return SampleBatch.of(ids, keys, refs, all_ts, vals)


async def read(db: ShardDB, metric: str = "m", start: int = -10**15, end: int = 10**15) -> dict:
    """Every series of ``metric`` with samples in the range: canonical labels -> (timestamps, value bits)."""
    sel = await db.select([Matcher(MatchType.EQ, "__name__", metric)], start, end)
    out, pos = {}, 0
    for i, c in zip(sel.idx.tolist(), sel.counts.tolist()):
        out[db.registry.keys[i]] = (sel.ts[pos:pos + c].tolist(), sel.vals[pos:pos + c].view(np.uint64).tolist())
        pos += c
    return out


async def write_hours(db: ShardDB, hours: float, n_series: int = 20, start_h: float = 0) -> None:
    """Samples every minute for ``hours`` from ``start_h``, an hour per batch."""
    t = start_h * H
    while t < (start_h + hours) * H:
        ts = np.arange(t, min(t + H, (start_h + hours) * H), STEP, dtype=np.int64)
        await db.write(f"w-{t}", batch(n_series, ts))
        t += H


def counter(c, *labels) -> float:
    """A prometheus_client counter's (or gauge's) value now."""
    return (c.labels(*labels) if labels else c)._value.get()


class Backend:
    """Where shard 0's keys live (see the module). Subclasses give the store and the outside view."""

    def store(self) -> Store:
        """A new store over the backend's keys: what a (re)started shard connects with."""
        raise NotImplementedError

    async def open(self, *, accept_data_loss: bool = False, **kw) -> ShardDB:
        """A ShardDB (block duration ``D`` unless given) recovered from the backend's keys."""
        db = ShardDB(self.store(), **{"block_duration_ms": D, **kw})
        await db.open(accept_data_loss=accept_data_loss)
        return db

    def keys(self) -> set[str]:
        """The shard's key names now."""
        raise NotImplementedError

    def block_keys(self) -> set[str]:
        return {k for k in self.keys() if ":block:" in k}

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def set(self, key: str, value: bytes) -> None:
        """Write a string key from outside the shard (what another version, or an operator, left)."""
        raise NotImplementedError

    def flushall(self) -> None:
        """Lose every key (FLUSHALL, a Redis restarted without AOF)."""
        raise NotImplementedError

    def snapshot(self) -> object:
        raise NotImplementedError

    def restore(self, snapshot: object) -> None:
        """Every key back as it was at ``snapshot`` (a Redis restarted from an older snapshot)."""
        raise NotImplementedError

    def fail(self, store: Store, operation: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``store.<operation>`` fail (ShardUnavailableError) before they
        change anything, as a Redis out of memory or unreachable does."""
        raise NotImplementedError


class MemoryBackend(Backend):
    """The in-memory store's keys (tests/unit)."""

    def __init__(self) -> None:
        self.redis = MemoryRedis()

    def store(self) -> MemoryStore:
        return MemoryStore(self.redis, 0)

    def keys(self) -> set[str]:
        return self.redis.keys(PREFIX)

    def get(self, key: str) -> bytes | None:
        return self.redis.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.redis.data[key] = value

    def flushall(self) -> None:
        self.redis.flushall()

    def snapshot(self) -> object:
        return self.redis.snapshot()

    def restore(self, snapshot: object) -> None:
        self.redis.restore(snapshot)  # type: ignore[arg-type]

    def fail(self, store: Store, operation: str, times: int = 1) -> None:
        assert isinstance(store, MemoryStore)
        store.fail(operation, times)
