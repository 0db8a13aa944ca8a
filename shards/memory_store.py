"""An in-memory :class:`~shardmon.shards.store.Store`, for unit tests only: the engine's tests run on it in
seconds, without a Redis. Nothing users run may import this module (a unit test checks that).

It models the Redis store faithfully rather than simply: the same keys (:class:`~shardmon.shards.store.Keys`,
FORMAT.md) with Redis's value types, the same transactions (each call is all or nothing, and yields to
the event loop once, as a round trip to Redis does), stream entry ids as ``XADD *`` makes them, the
identity checked in the append as the Lua script does, and the failure modes the engine handles:

- :class:`MemoryRedis` holds the keys and outlives the stores (shards) using it, as a Redis outlives a
  shard's restart: a new :class:`MemoryStore` over the same one is a restarted shard;
- :meth:`MemoryRedis.flushall` loses everything (a Redis restarted without AOF, FLUSHALL), and
  :meth:`MemoryRedis.snapshot` / :meth:`MemoryRedis.restore` roll it back (an old RDB snapshot);
- :meth:`MemoryStore.fail` makes the next calls of an operation fail with ShardUnavailableError
  before they change anything (Redis out of memory or unreachable): a failing block write, a
  compaction that dies before its transaction, a WAL append that is never acknowledged.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from shardmon.model.errors import ShardUnavailableError
from shardmon.shards.identity import IdentityGuard, identity_fields
from shardmon.shards.store import BlockMeta, Identity, StoredBlock


@dataclass
class _Stream:
    """A Redis stream: entries ``(id, fields)`` in id order, and the last id given (kept when trimmed)."""

    entries: list[tuple[str, dict[bytes, bytes]]] = field(default_factory=list)
    last: tuple[int, int] = (0, 0)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class MemoryRedis:
    """The keys of one Redis, in this process: a string is ``bytes``, a hash a ``dict[bytes, bytes]``,
    a stream a :class:`_Stream`. As in Redis, a hash left without fields is deleted; a stream is not."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    def keys(self, prefix: str = "") -> set[str]:
        return {k for k in self.data if k.startswith(prefix)}

    def flushall(self) -> None:
        """Lose every key (FLUSHALL; a Redis restarted without AOF or snapshot)."""
        self.data.clear()

    def snapshot(self) -> dict[str, object]:
        """A copy of every key, to :meth:`restore` later (an RDB snapshot)."""
        return copy.deepcopy(self.data)

    def restore(self, snapshot: dict[str, object]) -> None:
        """Come back as the snapshot was (a Redis restarted from an older snapshot)."""
        self.data = copy.deepcopy(snapshot)

    # -- the commands the store uses --------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)  # type: ignore[return-value]

    def hash(self, key: str) -> dict[bytes, bytes]:
        """The hash at ``key`` (empty when absent; a copy is not made: do not change it)."""
        return self.data.get(key, {})  # type: ignore[return-value]

    def hset(self, key: str, mapping: Mapping[bytes, bytes]) -> None:
        if mapping:
            self.data.setdefault(key, {}).update(mapping)  # type: ignore[union-attr]

    def hdel(self, key: str, fields: Sequence[bytes]) -> None:
        h = self.data.get(key)
        if h is not None:
            for f in fields:
                h.pop(f, None)  # type: ignore[union-attr]
            if not h:
                del self.data[key]

    def hincrby(self, key: str, name: bytes, by: int) -> int:
        h = self.data.setdefault(key, {})
        value = int(h.get(name, b"0")) + by  # type: ignore[union-attr]
        h[name] = str(value).encode()  # type: ignore[index]
        return value

    def xadd(self, key: str, fields: dict[bytes, bytes]) -> str:
        """Append an entry with an id as ``XADD key *`` makes it: the clock's ms, a sequence within it."""
        stream = self.data.setdefault(key, _Stream())
        assert isinstance(stream, _Stream)
        ms = max(int(time.time() * 1000), stream.last[0])
        stream.last = (ms, stream.last[1] + 1 if ms == stream.last[0] else 0)
        entry_id = f"{stream.last[0]}-{stream.last[1]}"
        stream.entries.append((entry_id, fields))
        return entry_id

    def stream(self, key: str) -> list[tuple[str, dict[bytes, bytes]]]:
        s = self.data.get(key)
        return s.entries if isinstance(s, _Stream) else []

    def xtrim_through(self, key: str, entry_id: str) -> None:
        """Remove the entries up to and including ``entry_id`` (an exact ``XTRIM MINID``)."""
        s = self.data.get(key)
        if isinstance(s, _Stream):
            through = _id_key(entry_id)
            s.entries = [e for e in s.entries if _id_key(e[0]) > through]


class MemoryStore(IdentityGuard):
    """One shard's keys in a :class:`MemoryRedis` (a new one unless given)."""

    def __init__(self, redis: MemoryRedis | None = None, shard_id: int = 0) -> None:
        super().__init__(shard_id)
        self.redis = redis if redis is not None else MemoryRedis()
        self._faults: dict[str, int | None] = {}

    def fail(self, operation: str, times: int | None = 1) -> None:
        """Make the next ``times`` calls of ``operation`` (a method name such as ``"write_blocks"``, or
        ``"*"`` for every call: an unreachable Redis) fail before changing anything; ``None``: until
        :meth:`heal`."""
        self._faults[operation] = times

    def heal(self) -> None:
        self._faults.clear()

    async def _call(self, operation: str) -> None:
        """One round trip: yield to the event loop, then fail if told to."""
        await asyncio.sleep(0)
        for name in (operation, "*"):
            if name in self._faults:
                left = self._faults[name]
                if left is not None:
                    if left <= 1:
                        del self._faults[name]
                    else:
                        self._faults[name] = left - 1
                raise ShardUnavailableError(f"memory store: {operation} failed (injected)")

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        await self._call("ping")

    # -- the identity's primitives (shards/identity.py) ------------------------------------------

    async def _read_marker_and_identity(self) -> tuple[bytes | None, Mapping[bytes, bytes]]:
        await self._call("identity")
        return self.redis.get(self.keys.data_lost), dict(self.redis.hash(self.keys.identity))

    async def _read_epoch_gen(self) -> tuple[bytes | None, bytes | None]:
        await self._call("identity")
        ident = self.redis.hash(self.keys.identity)
        return ident.get(b"epoch"), ident.get(b"gen")

    async def _has_data(self) -> bool:
        await self._call("identity")
        return any(k in self.redis.data for k in (self.keys.series, self.keys.wal, self.keys.blocks))

    async def _renew(self, ident: Identity) -> None:
        await self._call("identity")
        self.redis.data.pop(self.keys.data_lost, None)
        self.redis.hset(self.keys.identity, {k: v.encode() for k, v in identity_fields(ident).items()})

    async def _write_marker(self, marker: bytes) -> None:
        await self._call("identity")
        self.redis.data.setdefault(self.keys.data_lost, marker)

    async def _delete_keys(self) -> int:
        await self._call("delete_all")
        gone = self.redis.keys(self.keys.prefix)
        for k in gone:
            del self.redis.data[k]
        return len(gone)

    # -- the WAL and the series ----------------------------------------------------------------

    async def append(self, batch_id: str, record: bytes, new_series: Mapping[bytes, bytes]) -> str:
        """As the Redis store's Lua script: check the identity (epoch, generation not behind), bump the
        generation, add the new series' labels, append the entry; all at once."""
        self._check_writable()
        want_epoch, want_gen = self.epoch or "", self.gen
        await self._call("append")
        ident = self.redis.hash(self.keys.identity)
        epoch = ident.get(b"epoch")
        if epoch is None or epoch.decode() != want_epoch:
            raise await self._append_refused(want_epoch, want_gen, f"SHARDMON_IDENTITY epoch {epoch}")
        if int(ident.get(b"gen", b"0")) < want_gen:
            raise await self._append_refused(want_epoch, want_gen, f"SHARDMON_IDENTITY gen {ident.get(b'gen')}")
        gen = self.redis.hincrby(self.keys.identity, b"gen", 1)
        self.redis.hset(self.keys.series, new_series)
        entry = self.redis.xadd(self.keys.wal, {b"id": batch_id.encode(), b"r": record})
        self._bumped(gen)
        return entry

    async def replay(self) -> AsyncIterator[tuple[str, str, bytes]]:
        await self._call("replay")
        for entry_id, fields in list(self.redis.stream(self.keys.wal)):
            yield entry_id, fields[b"id"].decode(), fields[b"r"]

    async def wal_length(self) -> int:
        await self._call("wal_length")
        return len(self.redis.stream(self.keys.wal))

    async def load_series(self) -> list[tuple[bytes, bytes]]:
        await self._call("load_series")
        return list(self.redis.hash(self.keys.series).items())

    async def head_mint(self) -> int | None:
        await self._call("head_mint")
        v = self.redis.get(self.keys.head_mint)
        return int(v) if v is not None else None

    # -- blocks --------------------------------------------------------------------------------

    async def load_blocks(self) -> list[tuple[BlockMeta, bytes]]:
        await self._call("load_blocks")
        metas = sorted((BlockMeta.from_json(v) for v in self.redis.hash(self.keys.blocks).values()),
                       key=lambda m: (m.mint_ms, m.block_id))
        return [(m, self.redis.get(self.keys.block_series(m.block_id)) or b"") for m in metas]

    def _put_block(self, meta: BlockMeta, series_blob: bytes, chunks: Mapping[bytes, bytes]) -> None:
        self.redis.hset(self.keys.block_chunks(meta.block_id), dict(chunks))
        self.redis.data[self.keys.block_series(meta.block_id)] = series_blob
        self.redis.hset(self.keys.blocks, {meta.block_id.encode(): meta.to_json()})

    def _drop_blocks(self, block_ids: Sequence[str]) -> None:
        for block_id in block_ids:
            self.redis.data.pop(self.keys.block_chunks(block_id), None)
            self.redis.data.pop(self.keys.block_series(block_id), None)
        self.redis.hdel(self.keys.blocks, [i.encode() for i in block_ids])

    async def write_blocks(self, blocks: Sequence[StoredBlock], new_series: Mapping[bytes, bytes], *,
                           head_mint_ms: int | None = None, trim_through: str | None = None) -> None:
        await self._precheck()
        await self._call("write_blocks")
        self.redis.hset(self.keys.series, new_series)
        for meta, series_blob, chunks in blocks:
            self._put_block(meta, series_blob, chunks)
        if head_mint_ms is not None:
            self.redis.data[self.keys.head_mint] = str(head_mint_ms).encode()
        if trim_through is not None:
            self.redis.xtrim_through(self.keys.wal, trim_through)
        self._bumped(self.redis.hincrby(self.keys.identity, b"gen", 1))

    async def delete_blocks(self, block_ids: Sequence[str]) -> None:
        if not block_ids:
            return
        await self._precheck()
        await self._call("delete_blocks")
        self._drop_blocks(block_ids)
        self._bumped(self.redis.hincrby(self.keys.identity, b"gen", 1))

    async def replace_blocks(self, meta: BlockMeta, series_blob: bytes, chunks: Mapping[bytes, bytes],
                             old_ids: Sequence[str]) -> None:
        await self._precheck()
        await self._call("replace_blocks")
        self._drop_blocks(old_ids)
        self._put_block(meta, series_blob, chunks)
        self._bumped(self.redis.hincrby(self.keys.identity, b"gen", 1))

    async def read_block(self, block_id: str) -> dict[bytes, bytes]:
        await self._call("read_block")
        return dict(self.redis.hash(self.keys.block_chunks(block_id)))

    async def read_chunks(self, block_id: str, fields: Sequence[bytes]) -> list[bytes | None]:
        if not fields:
            return []
        await self._call("read_chunks")
        chunks = self.redis.hash(self.keys.block_chunks(block_id))
        return [chunks.get(f) for f in fields]

    # -- metric metadata -----------------------------------------------------------------------

    async def put_metadata(self, entries: Mapping[str, bytes]) -> None:
        self._check_writable()
        await self._call("put_metadata")
        self.redis.hset(self.keys.metadata, {k.encode(): v for k, v in entries.items()})

    async def load_metadata(self) -> dict[str, bytes]:
        await self._call("load_metadata")
        return {k.decode(): v for k, v in self.redis.hash(self.keys.metadata).items()}
