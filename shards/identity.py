"""A store's identity and what happens when it lost data: the rules both stores share.

A store keeps an identity (``P identity``: shard, a random epoch, the creation time and a generation
that every mutating transaction increments). Each WAL append checks it inside the transaction that
appends, each block transaction checks it just before, and :meth:`IdentityGuard.verify` checks it on
demand (the server, every second). A store whose identity is gone, whose epoch changed or whose
generation went back (a Redis restarted without AOF, FLUSHALL, failover to an empty or stale replica,
restored from an old snapshot) lost acknowledged data: the guard records why in ``lost``, writes the
``P data_lost`` marker (so a restarted shard knows too) and refuses every mutation with
:class:`~shardmon.model.errors.ShardDataLostError` until the loss is accepted (``attach(accept_data_loss=True)``).

:class:`IdentityGuard` holds these rules over a few primitives each store implements (read the
identity and the marker, write them, tell whether there is data, delete every key).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping

from shardmon.model.errors import ShardDataLostError, ShardNotDurableError, ShardUnavailableError
from shardmon.shards import metrics
from shardmon.shards.store import Identity, Keys

log = logging.getLogger(__name__)


class IdentityGuard:
    """The identity checks of one shard's store. Subclasses implement the ``_``-prefixed primitives;
    each raises :class:`ShardUnavailableError` when the store cannot be reached."""

    def __init__(self, shard_id: int) -> None:
        self.shard_id = shard_id
        self.keys = Keys(shard_id)
        #: The identity this store must still have (None until :meth:`attach`).
        self.epoch: str | None = None
        self.gen = 0
        self._lost: str | None = None
        #: Why writes are refused for want of durability (a Redis without AOF), or None.
        self.not_durable: str | None = None

    # -- primitives ------------------------------------------------------------------------------

    async def _read_marker_and_identity(self) -> tuple[bytes | None, Mapping[bytes, bytes]]:
        """``P data_lost`` (or None) and the ``P identity`` hash."""
        raise NotImplementedError

    async def _read_epoch_gen(self) -> tuple[bytes | None, bytes | None]:
        """The ``epoch`` and ``gen`` fields of ``P identity`` (None where missing)."""
        raise NotImplementedError

    async def _has_data(self) -> bool:
        """Whether the WAL, the series hash or the block list exists."""
        raise NotImplementedError

    async def _renew(self, ident: Identity) -> None:
        """Delete ``P data_lost`` and write ``ident`` as ``P identity``, in one transaction."""
        raise NotImplementedError

    async def _write_marker(self, marker: bytes) -> None:
        """Write ``P data_lost`` unless it exists (SET NX)."""
        raise NotImplementedError

    async def _delete_keys(self) -> int:
        """Delete every key of this shard; returns how many."""
        raise NotImplementedError

    # -- the rules -------------------------------------------------------------------------------

    @property
    def lost(self) -> str | None:
        """Why the store is known to have lost data (writes are refused), or None."""
        return self._lost

    @lost.setter
    def lost(self, why: str | None) -> None:
        self._lost = why
        metrics.REDIS_DATA_LOST.set(0 if why is None else 1)

    async def attach(self, *, accept_data_loss: bool = False) -> str:
        """Check the store's identity at start-up, creating it for a store the shard has not used
        before. With the ``P data_lost`` marker (a loss noticed earlier), the store stays ``lost`` unless
        ``accept_data_loss``: then the marker goes, and a new identity (a new epoch) is written over what
        is left. Returns what was done, for the log."""
        marker, raw = await self._read_marker_and_identity()
        ident = identity_of(raw)
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
        await self._renew(new)
        self.epoch, self.gen, self.lost = new.epoch, new.gen, None
        if marker is not None or accept_data_loss:
            return f"data loss accepted: new identity epoch {new.epoch} over what the Redis holds"
        return (f"new identity epoch {new.epoch} written over existing data (a Redis without identity)"
                if had_data else f"initialised an empty Redis: identity epoch {new.epoch}")

    async def verify(self) -> bool:
        """Compare the store's identity with the one the shard knows; on a mismatch, become ``lost``
        (and write the marker). Returns True when the store is still the shard's."""
        if self.lost is not None:
            return False
        if self.epoch is None:
            return True  # Not attached yet (or being reset): nothing to compare with.
        # What the shard knew before asking: a write finishing meanwhile only raises the store's generation.
        want_epoch, want_gen = self.epoch, self.gen
        epoch, gen = await self._read_epoch_gen()
        problem = mismatch(self.keys.identity, want_epoch, want_gen, epoch, gen)
        if problem and self.epoch == want_epoch:
            await self._lose(problem)
            return False
        return True

    async def _lose(self, problem: str) -> None:
        self.lost = problem
        log.error("shard %d: its Redis lost data: %s; writes are refused until it is recovered", self.shard_id,
                  problem)
        try:  # Best effort: a restarted shard then knows too.
            await self._write_marker(json.dumps(
                {"reason": problem, "detected_ms": int(time.time() * 1000), "epoch": self.epoch}).encode())
        except ShardUnavailableError as exc:
            log.warning("shard %d: could not write the data-loss marker: %s", self.shard_id, exc)

    async def _append_refused(self, want_epoch: str, want_gen: int, detail: str) -> ShardDataLostError:
        """A WAL append found another identity: become ``lost`` and return the error to raise."""
        try:
            epoch, gen_now = await self._read_epoch_gen()
        except ShardUnavailableError:
            epoch, gen_now = None, 0
        await self._lose(mismatch(self.keys.identity, want_epoch, want_gen, epoch, gen_now)
                         or f"the WAL append found another identity ({detail})")
        return self.lost_error()

    def lost_error(self) -> ShardDataLostError:
        return ShardDataLostError(
            f"shard {self.shard_id}: its Redis lost data ({self.lost}); writes are refused until the shard is "
            f"recovered: restart it with --accept-data-loss, or --rebuild-from-replicas with replication (README: "
            f"\"If a shard's Redis loses its data\")")

    def _check_writable(self) -> None:
        """Before a write the shard acknowledges: not lost, and durable."""
        if self.lost is not None:
            raise self.lost_error()
        if self.not_durable is not None:
            raise ShardNotDurableError(f"shard {self.shard_id}: {self.not_durable}")

    async def _precheck(self) -> None:
        """Before a block transaction: still the store the shard knows. (Block cuts, retention and
        compaction go on without an AOF: they acknowledge nothing.)"""
        if self.lost is not None:
            raise self.lost_error()
        if not await self.verify():
            raise self.lost_error()

    def _bumped(self, gen) -> None:
        self.gen = max(self.gen, int(gen))

    async def delete_all(self) -> int:
        """Delete every key of this shard (``shardmon:<id>:*``) and write a new identity (the Reset RPC,
        tests only); returns how many keys went."""
        self.epoch = None
        n = await self._delete_keys()
        self.gen = 0
        await self.attach(accept_data_loss=True)
        return n


def mismatch(key: str, want_epoch: str | None, want_gen: int, epoch: bytes | None, gen) -> str | None:
    """Why a store whose identity holds ``epoch`` and ``gen`` is not the one the shard knows, or None."""
    if epoch is None:
        return f"its identity key {key} is gone (restarted without AOF, FLUSHALL, failover to an empty replica?)"
    if epoch.decode() != want_epoch:
        return f"its epoch changed from {want_epoch} to {epoch.decode()} (another Redis, or one initialised anew)"
    if int(gen or 0) < int(want_gen):
        return (f"its generation went back from {want_gen} to {int(gen or 0)} (restarted from an older snapshot, or "
                "failover to a replica that was behind)")
    return None


def identity_of(raw: Mapping[bytes, bytes]) -> Identity | None:
    if not raw or b"epoch" not in raw:
        return None
    return Identity(int(raw.get(b"shard", b"-1")), raw[b"epoch"].decode(), int(raw.get(b"created_ms", b"0")),
                    int(raw.get(b"gen", b"0")))


def identity_fields(ident: Identity) -> dict[bytes, str]:
    """``ident`` as the fields of ``P identity``."""
    return {b"shard": str(ident.shard), b"epoch": ident.epoch, b"created_ms": str(ident.created_ms),
            b"gen": str(ident.gen)}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
