"""``shardmon shard --id N --rebuild-from-replicas``: copy a shard's series back from their other replicas.

With ``shards.replication_factor`` RF > 1 every series is on RF shards, so a shard whose Redis lost its
data can get its series back from the others. The shard serves while this runs (new writes go to its
head as usual, reads carry a warning): for each other shard that answers, one metric name at a time,
it reads every series over all time (``Series``, one stream of frames), keeps the series this shard
owns whose source is that shard (the first of its other owners, in placement order, that answers: each
series is copied from one replica only), and writes them with backfill: blocks of their own, which
reads and compaction merge with the rest, one sample per timestamp. Idempotent in effect: copying
twice leaves the same samples. Memory: one metric name's samples at a time.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from shardmon.model.config import Config
from shardmon.model.errors import ShardmonError
from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Matcher, MatchType
from shardmon.shards import metrics
from shardmon.shards.client import ShardClient, ShardConnection
from shardmon.shards.engine import ShardDB

log = logging.getLogger(__name__)

_ALL_TIME = (-(2**63), 2**63 - 1)
_RETRY_S = 10.0


def rows_to_copy(series_ids: np.ndarray, shard_ids: list[int], replicas: int, me: int, source: int,
                 answering: set[int]) -> np.ndarray:
    """Which series (a bool per id) shard ``me`` should copy from shard ``source``: those ``me`` owns
    whose first other owner, in placement order, among the shards ``answering``, is ``source``."""
    owners = np.asarray(shard_ids)[shards_for_series(series_ids, shard_ids, replicas)]
    mine = (owners == me).any(axis=1)
    usable = (owners != me) & np.isin(owners, sorted(answering))
    first = usable.argmax(axis=1)
    chosen = owners[np.arange(owners.shape[0]), first]
    return mine & usable.any(axis=1) & (chosen == source)


async def rebuild_from_replicas(db: ShardDB, config: Config, shard_id: int) -> int:
    """Copy this shard's series from the other replicas into ``db`` (see the module); returns the
    samples written. Retried every 10 s while no other shard answers or a copy fails half-way."""
    while True:
        try:
            return await _rebuild_once(db, config, shard_id)
        except ShardmonError as exc:
            db.rebuilding = f"rebuilding from replicas (retrying: {exc})"
            log.warning("shard %d: rebuild from replicas failed, retrying in %.0fs: %s", shard_id, _RETRY_S, exc)
            await asyncio.sleep(_RETRY_S)


async def _rebuild_once(db: ShardDB, config: Config, shard_id: int) -> int:
    cfg = config.shards
    shard_ids = [n.id for n in cfg.nodes]
    conn = ShardConnection.of(config)
    clients = {n.id: ShardClient(n.id, n.address, conn) for n in cfg.nodes if n.id != shard_id}
    db.rebuilding = "rebuilding from replicas"
    try:
        names: dict[int, list[str]] = {}
        for peer, client in clients.items():
            try:
                names[peer] = await asyncio.to_thread(client.label_values, "__name__", [], *_ALL_TIME)
            except ShardmonError as exc:
                log.warning("shard %d: rebuild: shard %d does not answer (%s); its series come from other replicas",
                            shard_id, peer, exc)
        if not names:
            raise ShardmonError("no other shard answers", retryable=True)
        answering = set(names)
        total_series = total_samples = 0
        for peer, metric_names in names.items():
            client = clients[peer]
            for k, name in enumerate(metric_names):
                db.rebuilding = (f"rebuilding from replicas: shard {peer}, metric {k + 1} of {len(metric_names)}")
                batches = await asyncio.to_thread(
                    client.series_batches, [Matcher(MatchType.EQ, "__name__", name)], *_ALL_TIME)
                for j, batch in enumerate(batches):
                    take = rows_to_copy(batch.series_ids, shard_ids, cfg.replication_factor, shard_id, peer,
                                        answering)
                    if not take.any():
                        continue
                    part = batch.select_series(take)
                    out = await db.backfill(f"rebuild-{db.store.epoch}-{peer}-{name}-{j}", part)
                    total_series += part.num_series
                    total_samples += out.appended
                    metrics.REBUILT_SAMPLES.inc(out.appended)
            log.info("shard %d: rebuild: copied what shard %d holds of this shard's series", shard_id, peer)
        log.info("shard %d: rebuild from replicas done: %d series, %d samples from shards %s", shard_id,
                 total_series, total_samples, sorted(answering))
        db.rebuilding = None
        return total_samples
    finally:
        for client in clients.values():
            client.close()
