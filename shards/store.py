"""The storage interface of a shard: what the engine (:class:`~shardmon.shards.engine.ShardDB`) needs from
wherever it keeps its bytes, and the records it keeps there.

A :class:`Store` holds one shard's WAL (a stream of batch records), its series labels, its blocks
(metadata, series list, per-series chunks), the checkpoint (``head_mint``), metric metadata and the
identity that tells whether the store still holds everything the shard wrote. Every key it uses is a
:class:`Keys` name, listed in FORMAT.md. Two implementations:

- :class:`shardmon.shards.redis_store.RedisStore`: the one the shard server runs, over its Redis;
- :class:`shardmon.shards.memory_store.MemoryStore`: an in-process model of the same keys and transactions,
  for unit tests only (nothing users run may import it; a unit test checks that).

Rules every store keeps (the engine relies on them): each mutating call is one atomic transaction,
whole or not at all, raising :class:`~shardmon.model.errors.ShardUnavailableError` when it cannot be done;
every mutation first checks the store's identity (:mod:`shardmon.shards.identity`) and refuses with
:class:`~shardmon.model.errors.ShardDataLostError` once the store is known to have lost data.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import NamedTuple, Protocol

from shardmon.model.errors import ShardDataLostError


class Keys:
    """The key names of one shard (FORMAT.md, "Keys"): all start with ``shardmon:<shard id>:``, so two
    shards pointed at one Redis by mistake do not mix their data."""

    def __init__(self, shard_id: int) -> None:
        self.prefix = p = f"shardmon:{shard_id}:"
        self.wal = p + "wal"
        self.series = p + "series"
        self.blocks = p + "blocks"
        self.head_mint = p + "head_mint"
        self.metadata = p + "metadata"
        self.identity = p + "identity"
        self.data_lost = p + "data_lost"

    def block_chunks(self, block_id: str) -> str:
        return f"{self.prefix}block:{block_id}:chunks"

    def block_series(self, block_id: str) -> str:
        return f"{self.prefix}block:{block_id}:series"


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


class Identity(NamedTuple):
    """What ``P identity`` holds: whose store this is, since when, and how far it has been written."""

    shard: int
    epoch: str
    created_ms: int
    gen: int


#: A block as the store writes it: its metadata, its series ids (uint64, sorted, as bytes) and its chunks
#: (8-byte big-endian series id -> chunk).
StoredBlock = tuple[BlockMeta, bytes, Mapping[bytes, bytes]]


class Store(Protocol):
    """What the engine needs from the storage of one shard (see the module's rules)."""

    shard_id: int
    #: The identity's epoch this store must still have (None until :meth:`attach`).
    epoch: str | None

    # -- identity and data loss (shards/identity.py) --------------------------------------------

    @property
    def lost(self) -> str | None:
        """Why the store is known to have lost data (every mutation is refused), or None."""

    async def ping(self) -> None:
        """Raise ShardUnavailableError unless the store answers."""

    async def attach(self, *, accept_data_loss: bool = False) -> str:
        """Check the store's identity at start-up (writing one into a store never used); with a data-loss
        marker, stay ``lost`` unless ``accept_data_loss``. Returns what was done, for the log."""

    async def verify(self) -> bool:
        """Whether the store is still the one the shard knows; becomes ``lost`` when not."""

    def lost_error(self) -> ShardDataLostError:
        """The error every mutation raises while ``lost``."""

    async def close(self) -> None: ...

    # -- the WAL and the series ----------------------------------------------------------------

    async def append(self, batch_id: str, record: bytes, new_series: Mapping[bytes, bytes]) -> str:
        """Make a write durable: the labels of series new to the shard and the WAL record, atomically,
        after checking the identity. Returns the WAL entry id (ordered as the entries are)."""

    def replay(self) -> AsyncIterator[tuple[str, str, bytes]]:
        """The WAL entries not trimmed yet, oldest first: ``(entry id, batch id, record)``."""

    async def wal_length(self) -> int: ...

    async def load_series(self) -> list[tuple[bytes, bytes]]:
        """Every (8-byte big-endian series id, canonical label bytes) stored."""

    async def head_mint(self) -> int | None:
        """The checkpoint: samples older than it are in blocks (None: no block cut yet)."""

    # -- blocks --------------------------------------------------------------------------------

    async def load_blocks(self) -> list[tuple[BlockMeta, bytes]]:
        """Every block's metadata and series-id array, ordered by (mint, block id)."""

    async def write_blocks(self, blocks: Sequence[StoredBlock], new_series: Mapping[bytes, bytes], *,
                           head_mint_ms: int | None = None, trim_through: str | None = None) -> None:
        """Store blocks (and the labels of series new to the shard) in one transaction; with
        ``head_mint_ms``, also move the checkpoint, and trim the WAL up to and including the entry
        ``trim_through``."""

    async def delete_blocks(self, block_ids: Sequence[str]) -> None:
        """Delete whole blocks (retention) in one transaction."""

    async def replace_blocks(self, meta: BlockMeta, series_blob: bytes, chunks: Mapping[bytes, bytes],
                             old_ids: Sequence[str]) -> None:
        """Store a compacted block and delete the blocks it replaces, in one transaction."""

    async def read_block(self, block_id: str) -> dict[bytes, bytes]:
        """Every chunk of a block: 8-byte big-endian series id -> chunk."""

    async def read_chunks(self, block_id: str, fields: Sequence[bytes]) -> list[bytes | None]:
        """The chunks of some series of a block (None where absent: the block is gone)."""

    # -- metric metadata, and everything ---------------------------------------------------------

    async def put_metadata(self, entries: Mapping[str, bytes]) -> None:
        """Store metric metadata: family name -> JSON list of [type, help, unit]."""

    async def load_metadata(self) -> dict[str, bytes]: ...

    async def delete_all(self) -> int:
        """Delete every key of the shard and write a new identity (the Reset RPC); returns the keys deleted."""
