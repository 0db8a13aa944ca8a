"""The shard's Redis: the :class:`~shardmon.shards.store.Store` the shard server runs, and the only module of the
shard that talks to Redis.

Every key is a :class:`~shardmon.shards.store.Keys` name (FORMAT.md lists them all). Redis errors are
translated here, once, into :class:`~shardmon.model.errors.ShardUnavailableError` (retryable). The identity
rules (a Redis that lost data) are :class:`~shardmon.shards.identity.IdentityGuard`'s; this module gives them
their Redis commands, and the WAL append checks the identity inside the same Lua script that appends.
It also makes sure of the Redis's own settings the shard insists on (``noeviction``, the AOF).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import redis.asyncio as aioredis
from redis.credentials import CredentialProvider
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from shardmon.model.errors import ConfigError, ShardUnavailableError
from shardmon.model.http_config import TLSConfig
from shardmon.shards import metrics
from shardmon.shards.identity import IdentityGuard, identity_fields
from shardmon.shards.store import BlockMeta, Identity, StoredBlock

# WAL replay's pages: about this many bytes, of this many entries at least and at most.
_REPLAY_PAGE_BYTES = 8 << 20
_REPLAY_PAGE_MIN = 16
_REPLAY_PAGE_MAX = 4096
_HSET_FIELDS = 20_000
_HSET_BYTES = 64 << 20


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


def next_stream_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (for an exact ``XTRIM MINID`` up to and including it)."""
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


class _PasswordProvider(CredentialProvider):
    """AUTH credentials for each new connection: the user named in the URL and the password now (a
    ``password_file`` is read again at each connection, so it can be rotated)."""

    def __init__(self, username: str | None, password: Callable[[], str | None]) -> None:
        self._username = username
        self._password = password

    def get_credentials(self):
        try:
            password = self._password() or ""
        except ConfigError as exc:
            raise AuthenticationError(str(exc)) from exc
        return (self._username, password) if self._username else (password,)

    async def get_credentials_async(self):
        return self.get_credentials()


_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# Append a WAL entry (and the labels of series new to the shard) only if the Redis is still the one the
# shard knows: same epoch, generation not behind. Increments the generation. Returns {entry id, gen}.
#   KEYS: identity, wal, series   ARGV: epoch, min gen, batch id, record, then series field, value...
_APPEND_LUA = """
local id = redis.call('HMGET', KEYS[1], 'epoch', 'gen')
if id[1] ~= ARGV[1] then
  return redis.error_reply('SHARDMON_IDENTITY epoch ' .. tostring(id[1]))
end
if tonumber(id[2] or '0') < tonumber(ARGV[2]) then
  return redis.error_reply('SHARDMON_IDENTITY gen ' .. tostring(id[2]))
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
for i = 5, #ARGV, 1000 do
  redis.call('HSET', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local entry = redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'r', ARGV[4])
return {entry, gen}
"""


class RedisStore(IdentityGuard):
    """Async access to one shard's keys in one Redis."""

    def __init__(self, url: str, shard_id: int, *, password: Callable[[], str | None] | None = None,
                 tls: TLSConfig | None = None) -> None:
        """``password``: called for each new connection (the node's password or password file); ``tls``:
        the node's ``redis_tls_config`` for a ``rediss://`` URL."""
        super().__init__(shard_id)
        kwargs: dict = {"decode_responses": False, "socket_timeout": 10}
        if password is not None:
            scheme, _, rest = url.partition("://")
            userinfo, at, hostport = rest.partition("/")[0].rpartition("@")
            username = None
            if at:  # The user goes to the credential provider (redis-py takes one or the other).
                username = userinfo
                url = f"{scheme}://{rest[len(userinfo) + 1:]}"
            kwargs["credential_provider"] = _PasswordProvider(username, password)
        if tls is not None:
            kwargs.update(
                ssl_ca_certs=tls.ca_file, ssl_ca_data=tls.ca, ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file,
                ssl_cert_reqs="none" if tls.insecure_skip_verify else "required",
                ssl_check_hostname=not tls.insecure_skip_verify,
            )
            if tls.min_version:
                kwargs["ssl_min_version"] = _TLS_VERSIONS[tls.min_version]
        self._redis = aioredis.Redis.from_url(url, **kwargs)
        self._append_script = self._redis.register_script(_APPEND_LUA)
        #: Whether Redis keeps an AOF, as last seen by :meth:`ensure_durability` (None: not asked yet).
        self.aof_enabled: bool | None = None

    async def close(self) -> None:
        await self._redis.aclose()

    # -- the identity's primitives (shards/identity.py) ------------------------------------------

    async def _read_marker_and_identity(self) -> tuple[bytes | None, Mapping[bytes, bytes]]:
        try:
            return await self._redis.get(self.keys.data_lost), await self._redis.hgetall(self.keys.identity)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def _read_epoch_gen(self) -> tuple[bytes | None, bytes | None]:
        try:
            epoch, gen = await self._redis.hmget(self.keys.identity, [b"epoch", b"gen"])
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return epoch, gen

    async def _has_data(self) -> bool:
        try:
            return bool(await self._redis.exists(self.keys.series, self.keys.wal, self.keys.blocks))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def _renew(self, ident: Identity) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.keys.data_lost)
                pipe.hset(self.keys.identity, mapping=identity_fields(ident))
                await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def _write_marker(self, marker: bytes) -> None:
        try:
            await self._redis.set(self.keys.data_lost, marker, nx=True)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def _delete_keys(self) -> int:
        n = 0
        try:
            async for key in self._redis.scan_iter(match=self.keys.prefix + "*", count=1000):
                n += await self._redis.unlink(key)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return n

    # -- the Redis's own settings ---------------------------------------------------------------

    async def eviction_policy(self) -> str:
        """The Redis's ``maxmemory-policy`` (CONFIG GET, or INFO memory where CONFIG is refused)."""
        try:
            try:
                policy = _config_value(await self._redis.config_get("maxmemory-policy"), "maxmemory-policy")
            except ResponseError:
                policy = None
            if policy is None:
                policy = str((await self._redis.info("memory")).get("maxmemory_policy", "noeviction"))
            return policy
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def ensure_durability(self, policy: str) -> list[str]:
        """Make Redis keep an append-only file fsynced by ``policy`` (``everysec``, ``always``, ``no``):
        ``CONFIG SET appendonly yes`` and ``appendfsync``, each only when it differs, then ``CONFIG
        REWRITE`` when Redis has a config file, so that a restart keeps them. When Redis refuses CONFIG
        (a managed Redis) and runs without AOF, the store refuses writes (``not_durable``) until a later
        call finds the AOF on. ``off``: nothing is asked. Returns warnings for the log."""
        if policy == "off":
            self.not_durable = None
            return []
        warnings: list[str] = []
        want = {"appendonly": "yes", "appendfsync": policy}
        try:
            changed = False
            try:
                for name, value in want.items():
                    current = _config_value(await self._redis.config_get(name), name)
                    if current != value:
                        await self._redis.config_set(name, value)
                        changed = True
            except ResponseError as exc:
                warnings.append(f"redis refused CONFIG ({exc}); set appendonly yes and appendfsync {policy} in its "
                                "own configuration")
            else:
                if changed:
                    config_file = (await self._redis.info("server")).get("config_file") or ""
                    if not config_file:
                        warnings.append("redis runs without a config file, so CONFIG REWRITE cannot keep appendonly "
                                        f"yes and appendfsync {policy} across its restart: start it with them")
                    else:
                        try:
                            await self._redis.config_rewrite()
                        except ResponseError as exc:
                            warnings.append(f"CONFIG REWRITE of {config_file} failed ({exc}): appendonly yes may not "
                                            "survive a restart of redis")
            aof = int((await self._redis.info("persistence")).get("aof_enabled", 0))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        self.aof_enabled = bool(aof)
        metrics.REDIS_APPENDONLY.set(1 if aof else 0)
        if not aof:
            self.not_durable = (f"its Redis runs without an append-only file (appendonly no) and refuses CONFIG, "
                                f"while shards.wal_appendfsync is {policy}: writes are refused rather than "
                                "acknowledged without durability; turn on appendonly yes in Redis (or set "
                                "shards.wal_appendfsync: off to accept the risk)")
        else:
            self.not_durable = None
        return warnings

    async def observe_redis(self) -> None:
        """Read the Redis's memory use, maxmemory and connected replicas into the shard's gauges
        (``shardmon_shard_redis_memory_used_bytes``, ``..._memory_max_bytes``, ``..._connected_replicas``)."""
        try:
            memory = await self._redis.info("memory")
            replication = await self._redis.info("replication")
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        metrics.REDIS_MEMORY_USED.set(int(memory.get("used_memory", 0)))
        metrics.REDIS_MEMORY_MAX.set(int(memory.get("maxmemory", 0)))
        metrics.REDIS_CONNECTED_REPLICAS.set(int(replication.get("connected_slaves", 0)))

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    # -- the WAL and the series ----------------------------------------------------------------

    async def append(self, batch_id: str, record: bytes, new_series: Mapping[bytes, bytes]) -> str:
        """Make a write durable: new series' labels and the WAL record, in one atomic script that first
        checks the Redis's identity (:class:`ShardDataLostError` if it lost data: nothing is written).

        Returns the stream entry id. Only after this returns may the write be acknowledged.
        """
        self._check_writable()
        args: list = [self.epoch or "", self.gen, batch_id.encode(), record]
        for field, value in new_series.items():
            args += (field, value)
        try:
            entry, gen = await self._append_script(keys=[self.keys.identity, self.keys.wal, self.keys.series],
                                                   args=args)
        except ResponseError as exc:
            if str(exc).startswith("SHARDMON_IDENTITY"):
                raise await self._append_refused(args[0], args[1], str(exc)) from None
            raise ShardUnavailableError(f"redis: WAL append failed: {exc}") from exc
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: WAL append failed: {exc}") from exc
        self._bumped(gen)
        return entry.decode()

    async def replay(self) -> AsyncIterator[tuple[str, str, bytes]]:
        """The WAL entries still in the stream, oldest first: ``(entry id, batch id, record)``.

        In pages of about 8 MB (``XRANGE`` with a count fitted to the entries' size), the next page
        asked for before this one is handed out, so Redis reads and sends it while the caller works."""
        count = _REPLAY_PAGE_MIN
        pending = asyncio.ensure_future(self._xrange_page("-", count))
        try:
            while True:
                page = await pending
                if len(page) == count:
                    size = sum(len(fields.get(b"r", b"")) for _, fields in page) + 64 * len(page)
                    count = max(_REPLAY_PAGE_MIN, min(_REPLAY_PAGE_MAX, _REPLAY_PAGE_BYTES * len(page) // size))
                    pending = asyncio.ensure_future(self._xrange_page("(" + page[-1][0].decode(), count))
                    await asyncio.sleep(0)  # lets the request go out before the caller takes this page
                else:
                    pending = None
                for entry_id, fields in page:
                    yield entry_id.decode(), fields[b"id"].decode(), fields[b"r"]
                if pending is None:
                    return
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    async def _xrange_page(self, start: str, count: int) -> list:
        try:
            return await self._redis.xrange(self.keys.wal, min=start, count=count)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: WAL replay failed: {exc}") from exc

    async def wal_length(self) -> int:
        try:
            return int(await self._redis.xlen(self.keys.wal))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def load_series(self) -> list[tuple[bytes, bytes]]:
        """Every (8-byte big-endian series id, canonical labels) the shard has stored."""
        try:
            return list((await self._redis.hgetall(self.keys.series)).items())
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def head_mint(self) -> int | None:
        try:
            v = await self._redis.get(self.keys.head_mint)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        return int(v) if v is not None else None

    # -- blocks --------------------------------------------------------------------------------

    async def load_blocks(self) -> list[tuple[BlockMeta, bytes]]:
        """Every block's metadata and its series-id array (raw bytes), ordered by (mint, block id): the
        order reads merge overlapping blocks in."""
        try:
            metas = sorted(
                (BlockMeta.from_json(v) for v in (await self._redis.hgetall(self.keys.blocks)).values()),
                key=lambda m: (m.mint_ms, m.block_id),
            )
            out = []
            for m in metas:
                out.append((m, await self._redis.get(self.keys.block_series(m.block_id)) or b""))
            return out
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def write_blocks(
        self,
        blocks: Sequence[StoredBlock],
        new_series: Mapping[bytes, bytes],
        *,
        head_mint_ms: int | None = None,
        trim_through: str | None = None,
    ) -> None:
        """Store blocks (and the labels of series new to the shard) in one MULTI/EXEC; with
        ``head_mint_ms``, also move the checkpoint (and trim the WAL up to ``trim_through``: an exact
        ``XTRIM MINID`` of the id after it). A block cut from the head, the checkpoint and the trim of
        the WAL entries it covers so happen at once: a crash leaves the old state or the new one."""
        await self._precheck()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if new_series:
                    pipe.hset(self.keys.series, mapping=dict(new_series))
                for meta, series_blob, chunks in blocks:
                    _hset_in_parts(pipe, self.keys.block_chunks(meta.block_id), chunks)
                    pipe.set(self.keys.block_series(meta.block_id), series_blob)
                    pipe.hset(self.keys.blocks, meta.block_id, meta.to_json())
                if head_mint_ms is not None:
                    pipe.set(self.keys.head_mint, str(head_mint_ms))
                if trim_through is not None:
                    pipe.xtrim(self.keys.wal, minid=next_stream_id(trim_through), approximate=False)
                pipe.hincrby(self.keys.identity, "gen", 1)
                self._bumped((await pipe.execute())[-1])
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: block write failed: {exc}") from exc

    async def delete_blocks(self, block_ids: Sequence[str]) -> None:
        """Delete whole blocks (retention): their chunks, series lists and metadata, in one MULTI/EXEC."""
        if not block_ids:
            return
        await self._precheck()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for block_id in block_ids:
                    pipe.unlink(self.keys.block_chunks(block_id), self.keys.block_series(block_id))
                pipe.hdel(self.keys.blocks, *block_ids)
                pipe.hincrby(self.keys.identity, "gen", 1)
                self._bumped((await pipe.execute())[-1])
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: block deletion failed: {exc}") from exc

    async def replace_blocks(
        self, meta: BlockMeta, series_blob: bytes, chunks: Mapping[bytes, bytes], old_ids: Sequence[str]
    ) -> None:
        """Store a compacted block and delete the blocks it replaces, in one MULTI/EXEC: a crash
        leaves either the old blocks or the new one, never both and never neither."""
        await self._precheck()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for block_id in old_ids:
                    pipe.unlink(self.keys.block_chunks(block_id), self.keys.block_series(block_id))
                pipe.hdel(self.keys.blocks, *old_ids)
                _hset_in_parts(pipe, self.keys.block_chunks(meta.block_id), chunks)
                pipe.set(self.keys.block_series(meta.block_id), series_blob)
                pipe.hset(self.keys.blocks, meta.block_id, meta.to_json())
                pipe.hincrby(self.keys.identity, "gen", 1)
                self._bumped((await pipe.execute())[-1])
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: compaction commit failed: {exc}") from exc

    async def read_block(self, block_id: str) -> dict[bytes, bytes]:
        """Every chunk of a block: 8-byte big-endian series id -> chunk."""
        try:
            return await self._redis.hgetall(self.keys.block_chunks(block_id))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def read_chunks(self, block_id: str, fields: Sequence[bytes]) -> list[bytes | None]:
        if not fields:
            return []
        try:
            return await self._redis.hmget(self.keys.block_chunks(block_id), list(fields))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    # -- metric metadata -----------------------------------------------------------------------

    async def put_metadata(self, entries: Mapping[str, bytes]) -> None:
        """Store metric metadata: family name -> JSON list of [type, help, unit]."""
        self._check_writable()
        try:
            await self._redis.hset(self.keys.metadata, mapping=dict(entries))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def load_metadata(self) -> dict[str, bytes]:
        try:
            return {k.decode(): v for k, v in (await self._redis.hgetall(self.keys.metadata)).items()}
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc


def _config_value(answer: Mapping, name: str) -> str | None:
    """One setting from a CONFIG GET answer (keys and values are str or bytes, by redis-py version)."""
    v = answer.get(name, answer.get(name.encode()))
    return v.decode() if isinstance(v, bytes) else v
