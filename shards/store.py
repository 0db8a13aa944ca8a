"""The shard's Redis: the only module of the shard that talks to Redis.

Every key starts with ``shardmon:<shard id>:`` (FORMAT.md lists them all), so a Redis shared by
mistake between two shards does not mix their data. Redis errors are translated here, once, into
:class:`~model.errors.ShardUnavailableError` (retryable).

Integrity: the store keeps the Redis's identity (``P identity``: shard, a random epoch, the creation
time and a generation that every mutating transaction increments). Each WAL append checks it inside
the same Lua script that appends, each block transaction checks it just before, and
:meth:`RedisStore.verify` checks it on demand (the server, every second). A Redis whose identity is
gone, whose epoch changed or whose generation went back (restarted without AOF, FLUSHALL, failover to
an empty or stale replica, restored from an old snapshot) lost acknowledged data: the store records
why in ``lost``, writes the ``P data_lost`` marker (so a restarted shard knows too) and refuses every
mutation with :class:`~model.errors.ShardDataLostError` until the loss is accepted.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.credentials import CredentialProvider
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from model.errors import ConfigError, ShardDataLostError, ShardNotDurableError, ShardUnavailableError
from model.http_config import TLSConfig
from shards import metrics

log = logging.getLogger(__name__)

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


class Identity(NamedTuple):
    """What ``P identity`` holds: whose Redis this is, since when, and how far it has been written."""

    shard: int
    epoch: str
    created_ms: int
    gen: int


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


class RedisStore:
    """Async access to one shard's keys in one Redis."""

    def __init__(self, url: str, shard_id: int, *, password: Callable[[], str | None] | None = None,
                 tls: TLSConfig | None = None) -> None:
        """``password``: called for each new connection (the node's password or password file); ``tls``:
        the node's ``redis_tls_config`` for a ``rediss://`` URL."""
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
        self.shard_id = shard_id
        p = f"shardmon:{shard_id}:"
        self.k_wal = p + "wal"
        self.k_series = p + "series"
        self.k_blocks = p + "blocks"
        self.k_head_mint = p + "head_mint"
        self.k_metadata = p + "metadata"
        self.k_identity = p + "identity"
        self.k_data_lost = p + "data_lost"
        self._p = p
        #: The identity this Redis must still have (None until :meth:`attach`).
        self.epoch: str | None = None
        self.gen = 0
        self._lost: str | None = None
        #: Why writes are refused for want of an AOF (see :meth:`ensure_durability`), or None.
        self.not_durable: str | None = None
        #: Whether Redis keeps an AOF, as last seen by :meth:`ensure_durability` (None: not asked yet).
        self.aof_enabled: bool | None = None

    def k_block_chunks(self, block_id: str) -> str:
        return f"{self._p}block:{block_id}:chunks"

    def k_block_series(self, block_id: str) -> str:
        return f"{self._p}block:{block_id}:series"

    async def close(self) -> None:
        await self._redis.aclose()

    # -- identity and integrity -----------------------------------------------------------------

    @property
    def lost(self) -> str | None:
        """Why the Redis is known to have lost data (writes are refused), or None."""
        return self._lost

    @lost.setter
    def lost(self, why: str | None) -> None:
        self._lost = why
        metrics.REDIS_DATA_LOST.set(0 if why is None else 1)

    async def attach(self, *, accept_data_loss: bool = False) -> str:
        """Check this Redis's identity at start-up, creating it for a Redis the shard has not used
        before. With the ``P data_lost`` marker (a loss noticed earlier), the store stays ``lost`` unless
        ``accept_data_loss``: then the marker goes, and a new identity (a new epoch) is written over what
        is left. Returns what was done, for the log."""
        try:
            marker = await self._redis.get(self.k_data_lost)
            raw = await self._redis.hgetall(self.k_identity)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        ident = _identity_of(raw)
        if marker is not None and not accept_data_loss:
            noted = json.loads(marker)
            why = f"{noted.get('reason', 'unknown')}; noticed at {_iso(int(noted.get('detected_ms', 0)))}"
            self.lost = why
            self.epoch = ident.epoch if ident else None
            return f"data loss noticed earlier, not accepted yet: {why}"
        if ident is not None and marker is None and not accept_data_loss:
            self.epoch, self.gen, self.lost = ident.epoch, ident.gen, None
            return f"identity epoch {ident.epoch}, generation {ident.gen}, created {_iso(ident.created_ms)}"
        had_data = await self._has_data()
        new = Identity(self.shard_id, os.urandom(8).hex(), int(time.time() * 1000), ident.gen if ident else 0)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.k_data_lost)
                pipe.hset(self.k_identity, mapping={b"shard": str(new.shard), b"epoch": new.epoch,
                                                    b"created_ms": str(new.created_ms), b"gen": str(new.gen)})
                await pipe.execute()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        self.epoch, self.gen, self.lost = new.epoch, new.gen, None
        if marker is not None or accept_data_loss:
            return f"data loss accepted: new identity epoch {new.epoch} over what the Redis holds"
        return (f"new identity epoch {new.epoch} written over existing data (a Redis without identity)"
                if had_data else f"initialised an empty Redis: identity epoch {new.epoch}")

    async def _has_data(self) -> bool:
        try:
            return bool(await self._redis.exists(self.k_series, self.k_wal, self.k_blocks))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

    async def verify(self) -> bool:
        """Compare the Redis's identity with the one the shard knows; on a mismatch, become ``lost``
        (and write the marker). Returns True when the Redis is still the shard's."""
        if self.lost is not None:
            return False
        if self.epoch is None:
            return True  # Not attached yet (or being reset): nothing to compare with.
        # What the shard knew before asking: a write finishing meanwhile only raises the Redis's generation.
        want_epoch, want_gen = self.epoch, self.gen
        try:
            epoch, gen = await self._redis.hmget(self.k_identity, [b"epoch", b"gen"])
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        problem = _mismatch(self.k_identity, want_epoch, want_gen, epoch, gen)
        if problem and self.epoch == want_epoch:
            await self._lose(problem)
            return False
        return True

    async def _lose(self, problem: str) -> None:
        self.lost = problem
        log.error("shard %d: its Redis lost data: %s; writes are refused until it is recovered", self.shard_id,
                  problem)
        try:  # Best effort: a restarted shard then knows too.
            await self._redis.set(self.k_data_lost, json.dumps(
                {"reason": problem, "detected_ms": int(time.time() * 1000), "epoch": self.epoch}), nx=True)
        except RedisError as exc:
            log.warning("shard %d: could not write the data-loss marker: %s", self.shard_id, exc)

    def lost_error(self) -> ShardDataLostError:
        return ShardDataLostError(
            f"shard {self.shard_id}: its Redis lost data ({self.lost}); writes are refused until the shard is "
            f"recovered: restart it with --accept-data-loss, or --rebuild-from-replicas with replication (README: "
            f"\"If a shard's Redis loses its data\")")

    def _check_writable(self) -> None:
        if self.lost is not None:
            raise self.lost_error()
        if self.not_durable is not None:
            raise ShardNotDurableError(f"shard {self.shard_id}: {self.not_durable}")

    async def _precheck(self) -> None:
        """Before a block transaction: still the Redis the shard knows. (Block cuts, retention and
        compaction go on without an AOF: they acknowledge nothing.)"""
        if self.lost is not None:
            raise self.lost_error()
        if not await self.verify():
            raise self.lost_error()

    def _bumped(self, gen) -> None:
        self.gen = max(self.gen, int(gen))

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

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc

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
            entry, gen = await self._append_script(keys=[self.k_identity, self.k_wal, self.k_series], args=args)
        except ResponseError as exc:
            if str(exc).startswith("SHARDMON_IDENTITY"):
                try:
                    epoch, gen_now = await self._redis.hmget(self.k_identity, [b"epoch", b"gen"])
                except RedisError:
                    epoch, gen_now = None, 0
                await self._lose(_mismatch(self.k_identity, args[0], args[1], epoch, gen_now)
                                 or f"the WAL append found another identity ({exc})")
                raise self.lost_error() from None
            raise ShardUnavailableError(f"redis: WAL append failed: {exc}") from exc
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: WAL append failed: {exc}") from exc
        self._bumped(gen)
        return entry.decode()

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
        await self._precheck()
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
                pipe.hincrby(self.k_identity, "gen", 1)
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
                    pipe.unlink(self.k_block_chunks(block_id), self.k_block_series(block_id))
                pipe.hdel(self.k_blocks, *block_ids)
                pipe.hincrby(self.k_identity, "gen", 1)
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
                    pipe.unlink(self.k_block_chunks(block_id), self.k_block_series(block_id))
                pipe.hdel(self.k_blocks, *old_ids)
                _hset_in_parts(pipe, self.k_block_chunks(meta.block_id), chunks)
                pipe.set(self.k_block_series(meta.block_id), series_blob)
                pipe.hset(self.k_blocks, meta.block_id, meta.to_json())
                pipe.hincrby(self.k_identity, "gen", 1)
                self._bumped((await pipe.execute())[-1])
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
        self._check_writable()
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
        """Delete every key of this shard (``shardmon:<id>:*``) and write a new identity (the Reset RPC,
        tests only); returns how many keys went."""
        n = 0
        self.epoch = None
        try:
            async for key in self._redis.scan_iter(match=self._p + "*", count=1000):
                n += await self._redis.unlink(key)
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc
        self.gen = 0
        await self.attach(accept_data_loss=True)
        return n

    async def wal_length(self) -> int:
        try:
            return int(await self._redis.xlen(self.k_wal))
        except RedisError as exc:
            raise ShardUnavailableError(f"redis: {exc}") from exc


def _config_value(answer: Mapping, name: str) -> str | None:
    """One setting from a CONFIG GET answer (keys and values are str or bytes, by redis-py version)."""
    v = answer.get(name, answer.get(name.encode()))
    return v.decode() if isinstance(v, bytes) else v


def _mismatch(key: str, want_epoch: str | None, want_gen: int, epoch: bytes | None, gen) -> str | None:
    """Why a Redis whose identity holds ``epoch`` and ``gen`` is not the one the shard knows, or None."""
    if epoch is None:
        return f"its identity key {key} is gone (restarted without AOF, FLUSHALL, failover to an empty replica?)"
    if epoch.decode() != want_epoch:
        return f"its epoch changed from {want_epoch} to {epoch.decode()} (another Redis, or one initialised anew)"
    if int(gen or 0) < int(want_gen):
        return (f"its generation went back from {want_gen} to {int(gen or 0)} (restarted from an older snapshot, or "
                "failover to a replica that was behind)")
    return None


def _identity_of(raw: Mapping[bytes, bytes]) -> Identity | None:
    if not raw or b"epoch" not in raw:
        return None
    return Identity(int(raw.get(b"shard", b"-1")), raw[b"epoch"].decode(), int(raw.get(b"created_ms", b"0")),
                    int(raw.get(b"gen", b"0")))


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
