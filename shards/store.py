"""The shard's Redis: the only module of the shard that talks to Redis.

Every key starts with ``shardmon:<shard id>:`` (FORMAT.md lists them all), so a Redis shared by
mistake between two shards does not mix their data. Redis errors are translated here, once, into
:class:`~model.errors.ShardUnavailableError` (retryable).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from model.errors import ShardUnavailableError

_REPLAY_PAGE = 256
_HSET_FIELDS = 20_000
_HSET_BYTES = 64 << 20


class BlockMeta(NamedTuple):
    """A block: the samples of ``[mint_ms, maxt_ms)`` of ``num_series`` series."""

    block_id: str
    mint_ms: int
    maxt_ms: int
    num_series: int
    num_samples: int
    size_bytes: int
    #: The backfill batch tags of the backfill blocks a compaction merged into this one (so a retried
    #: backfill batch is still recognised once its blocks are compacted).
    backfill: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        d = self._asdict()
        if not d["backfill"]:
            del d["backfill"]
        else:
            d["backfill"] = list(d["backfill"])
        return json.dumps(d).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BlockMeta:
        d = json.loads(data)
        if "backfill" in d:
            d["backfill"] = tuple(d["backfill"])
        return cls(**d)


def _hset_in_parts(pipe, key: str, mapping: Mapping[bytes, bytes]) -> None:
    """HSET ``mapping`` as several commands of bounded size (each command of a transaction is
    parsed whole into Redis's query buffer, limited to 1 GB by default)."""
    part: dict[bytes, bytes] = {}
    size = 0
    for field, value in mapping.items():
        part[field] = value
        size += len(field) + len(value)
        if len(part) >= _HSET_FIELDS or size >= _HSET_BYTES:
            pipe.hset(key, mapping=part)
            part, size = {}, 0
    if part:
        pipe.hset(key, mapping=part)


class RedisStore:
    """Async access to one shard's keys in one Redis."""

    def __init__(self, url: str, shard_id: int) -> None:
        self._redis = aioredis.Redis.from_url(url, decode_responses=False, socket_timeout=10)
        p = f"shardmon:{shard_id}:"
        self.k_wal = p + "wal"
        self.k_series = p + "series"
        self.k_blocks = p + "blocks"
        self.k_head_mint = p + "head_mint"
        self.k_metadata = p + "metadata"
        self._p = p

    def k_block_chunks(self, block_id: str) -> str:
        return f"{self._p}block:{block_id}:chunks"

    def k_block_series(self, block_id: str) -> str:
        return f"{self._p}block:{block_id}:series"

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def append(self, batch_id: str, record: bytes, new_series: Mapping[bytes, bytes]) -> str:
        """Make a write durable: new series' labels and the WAL record, in one transaction.

        Returns the stream entry id. Only after this returns may the write be acknowledged.
        """
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if new_series:
                    pipe.hset(self.k_series, mapping=dict(new_series))
                pipe.xadd(self.k_wal, {b"id": batch_id.encode(), b"r": record})
                res = await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: WAL append failed: {exc}") from exc
        return res[-1].decode()

    async def load_series(self) -> list[tuple[bytes, bytes]]:
        """Every (8-byte big-endian series id, canonical labels) the shard has stored."""
        try:
            return list((await self._redis.hgetall(self.k_series)).items())
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def load_blocks(self) -> list[tuple[BlockMeta, bytes]]:
        """Every block's metadata and its series-id array (raw bytes), ordered by (mint, block id): the
        order reads merge overlapping blocks in."""
        try:
            metas = sorted(
                (BlockMeta.from_json(v) for v in (await self._redis.hgetall(self.k_blocks)).values()),
                key=lambda m: (m.mint_ms, m.block_id),
            )
            out = []
            for m in metas:
                out.append((m, await self._redis.get(self.k_block_series(m.block_id)) or b""))
            return out
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def head_mint(self) -> int | None:
        try:
            v = await self._redis.get(self.k_head_mint)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return int(v) if v is not None else None

    async def replay(self) -> AsyncIterator[tuple[str, str, bytes]]:
        """The WAL entries still in the stream, oldest first: ``(entry id, batch id, record)``."""
        start = "-"
        while True:
            try:
                page = await self._redis.xrange(self.k_wal, min=start, count=_REPLAY_PAGE)
            except RedisError as exc:
                raise ShardUnavailableError(f"redis: WAL replay failed: {exc}") from exc
            for entry_id, fields in page:
                yield entry_id.decode(), fields[b"id"].decode(), fields[b"r"]
            if len(page) < _REPLAY_PAGE:
                return
            start = "(" + page[-1][0].decode()

    async def write_block(
        self,
        meta: BlockMeta,
        series_blob: bytes,
        chunks: Mapping[bytes, bytes],
        head_mint_ms: int,
        trim_minid: str | None,
    ) -> None:
        """Store a block cut from the head and advance the checkpoint, atomically.

        The block's chunks, its series list and metadata, the head's new lower bound and the trim
        of the WAL entries now covered by blocks happen in one MULTI/EXEC, so a crash leaves either
        the old state or the new one.
        """
        await self.write_blocks([(meta, series_blob, chunks)], {}, head_mint_ms=head_mint_ms, trim_minid=trim_minid)

    async def write_blocks(
        self,
        blocks: Sequence[tuple[BlockMeta, bytes, Mapping[bytes, bytes]]],
        new_series: Mapping[bytes, bytes],
        *,
        head_mint_ms: int | None = None,
        trim_minid: str | None = None,
    ) -> None:
        """Store blocks (and the labels of series new to the shard) in one MULTI/EXEC; with
        ``head_mint_ms``, also move the checkpoint (and trim the WAL up to ``trim_minid``)."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if new_series:
                    pipe.hset(self.k_series, mapping=dict(new_series))
                for meta, series_blob, chunks in blocks:
                    _hset_in_parts(pipe, self.k_block_chunks(meta.block_id), chunks)
                    pipe.set(self.k_block_series(meta.block_id), series_blob)
                    pipe.hset(self.k_blocks, meta.block_id, meta.to_json())
                if head_mint_ms is not None:
                    pipe.set(self.k_head_mint, str(head_mint_ms))
                if trim_minid is not None:
                    pipe.xtrim(self.k_wal, minid=trim_minid, approximate=False)
                await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: block write failed: {exc}") from exc

    async def delete_blocks(self, block_ids: Sequence[str]) -> None:
        """Delete whole blocks (retention): their chunks, series lists and metadata, in one MULTI/EXEC."""
        if not block_ids:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for block_id in block_ids:
                    pipe.unlink(self.k_block_chunks(block_id), self.k_block_series(block_id))
                pipe.hdel(self.k_blocks, *block_ids)
                await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: block deletion failed: {exc}") from exc

    async def replace_blocks(
        self, meta: BlockMeta, series_blob: bytes, chunks: Mapping[bytes, bytes], old_ids: Sequence[str]
    ) -> None:
        """Store a compacted block and delete the blocks it replaces, in one MULTI/EXEC: a crash
        leaves either the old blocks or the new one, never both and never neither."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for block_id in old_ids:
                    pipe.unlink(self.k_block_chunks(block_id), self.k_block_series(block_id))
                pipe.hdel(self.k_blocks, *old_ids)
                _hset_in_parts(pipe, self.k_block_chunks(meta.block_id), chunks)
                pipe.set(self.k_block_series(meta.block_id), series_blob)
                pipe.hset(self.k_blocks, meta.block_id, meta.to_json())
                await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: compaction commit failed: {exc}") from exc

    async def read_block(self, block_id: str) -> dict[bytes, bytes]:
        """Every chunk of a block: 8-byte big-endian series id -> chunk."""
        try:
            return await self._redis.hgetall(self.k_block_chunks(block_id))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def read_chunks(self, block_id: str, fields: Sequence[bytes]) -> list[bytes | None]:
        if not fields:
            return []
        try:
            return await self._redis.hmget(self.k_block_chunks(block_id), list(fields))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def put_metadata(self, entries: Mapping[str, bytes]) -> None:
        """Store metric metadata: family name -> JSON list of [type, help, unit]."""
        try:
            await self._redis.hset(self.k_metadata, mapping=dict(entries))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def load_metadata(self) -> dict[str, bytes]:
        try:
            return {k.decode(): v for k, v in (await self._redis.hgetall(self.k_metadata)).items()}
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def delete_all(self) -> int:
        """Delete every key of this shard (``shardmon:<id>:*``); returns how many."""
        n = 0
        try:
            async for key in self._redis.scan_iter(match=self._p + "*", count=1000):
                n += await self._redis.unlink(key)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return n

    async def apply_appendfsync(self, policy: str) -> str | None:
        """Make Redis keep an append-only file fsynced by ``policy`` (``everysec``, ``always``, ``no``):
        ``CONFIG SET appendonly yes`` and ``appendfsync``, each only when it differs. Returns None when
        Redis runs so, else why not (CONFIG refused, e.g. a managed Redis): the caller warns and goes on."""
        want = {"appendonly": "yes", "appendfsync": policy}
        try:
            for name, value in want.items():
                current = (await self._redis.config_get(name)).get(name.encode())
                if current is None or current.decode() != value:
                    await self._redis.config_set(name, value)
        except ResponseError as exc:
            return f"redis refused CONFIG ({exc}); set appendonly yes and appendfsync {policy} in its own configuration"
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return None

    async def wal_length(self) -> int:
        try:
            return int(await self._redis.xlen(self.k_wal))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
