"""The stores' own parts: the block metadata record, the Redis store's command sizes and stream ids,
the in-memory store's model of Redis, and that nothing users run uses the in-memory store."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from shardmon.model.errors import ShardUnavailableError
from shardmon.shards import redis_store
from shardmon.shards.memory_store import MemoryRedis, MemoryStore
from shardmon.shards.store import BlockMeta, Keys

ROOT = Path(__file__).resolve().parents[3]


def test_block_metadata_round_trips_and_omits_an_empty_backfill_list():
    plain = BlockMeta("0-10", 0, 10, 1, 2, 3)
    assert b"backfill" not in plain.to_json() and BlockMeta.from_json(plain.to_json()) == plain
    merged = plain._replace(block_id="0-10-cabc", backfill=("bf1", "bf2"))
    assert BlockMeta.from_json(merged.to_json()) == merged


def test_big_chunk_hashes_are_written_in_bounded_commands(monkeypatch):
    class Pipe:
        def __init__(self):
            self.calls = []

        def hset(self, key, mapping):
            self.calls.append(dict(mapping))

    monkeypatch.setattr(redis_store, "_HSET_FIELDS", 3)
    pipe = Pipe()
    redis_store._hset_in_parts(pipe, "k", {bytes([i]): b"x" for i in range(7)})
    assert [len(c) for c in pipe.calls] == [3, 3, 1]
    pipe = Pipe()
    redis_store._hset_in_parts(pipe, "k", {})
    assert pipe.calls == []


def test_next_stream_id_trims_exactly_up_to_an_entry():
    assert redis_store.next_stream_id("1700000000000-0") == "1700000000000-1"
    assert redis_store.next_stream_id("5-41") == "5-42"


def test_keys_are_the_shards_own():
    k = Keys(7)
    assert (k.wal, k.identity, k.block_chunks("0-10")) == \
        ("shardmon:7:wal", "shardmon:7:identity", "shardmon:7:block:0-10:chunks")


# -- the in-memory model of Redis ----------------------------------------------------------------------


def test_stream_ids_increase_as_xadd_makes_them_and_a_trim_is_exact():
    def order(entry_id):
        return tuple(map(int, entry_id.split("-")))

    r = MemoryRedis()
    ids = [r.xadd("s", {b"n": str(i).encode()}) for i in range(5)]
    assert [order(i) for i in ids] == sorted(set(order(i) for i in ids))
    r.xtrim_through("s", ids[2])
    assert [e for e, _ in r.stream("s")] == ids[3:]
    r.xtrim_through("s", ids[4])
    assert r.stream("s") == [] and "s" in r.keys()  # an emptied stream stays, as in Redis
    assert order(r.xadd("s", {})) > order(ids[4])  # and goes on from its last id


def test_a_hash_left_without_fields_is_deleted_and_hincrby_creates_one():
    r = MemoryRedis()
    r.hset("h", {b"a": b"1", b"b": b"2"})
    r.hdel("h", [b"a", b"b", b"c"])
    assert "h" not in r.keys()
    assert r.hincrby("g", b"gen", 1) == 1 and r.hash("g") == {b"gen": b"1"}


def test_an_injected_failure_changes_nothing_and_heals():
    async def main():
        store = MemoryStore()
        await store.attach()
        keys = store.redis.snapshot()
        store.fail("append", times=2)
        for _ in range(2):
            with pytest.raises(ShardUnavailableError, match="append failed"):
                await store.append("b1", b"record", {b"s": b"labels"})
        assert store.redis.snapshot() == keys
        assert await store.append("b1", b"record", {b"s": b"labels"})
        store.fail("*", times=None)  # unreachable until healed
        with pytest.raises(ShardUnavailableError):
            await store.ping()
        with pytest.raises(ShardUnavailableError):
            await store.load_series()
        store.heal()
        assert await store.load_series() == [(b"s", b"labels")]

    asyncio.run(main())


def test_nothing_users_run_imports_the_in_memory_store():
    users = []
    for folder in ("model", "shards", "ingest", "querier", "shardmon", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "memory_store.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [f"{node.module}.{a.name}" for a in getattr(node, "names", [])
                          if isinstance(node, ast.ImportFrom)]
                if any(n.endswith("memory_store") for n in names):
                    users.append(str(path.relative_to(ROOT)))
    assert not users, users
