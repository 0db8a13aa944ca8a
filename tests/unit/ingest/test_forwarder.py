"""The forwarder's queue is bounded, and what it must drop is counted, never silent."""

from __future__ import annotations

import asyncio

import numpy as np

from shardmon.ingest.forwarder import Forwarder
from shardmon.model.config import IngestConfig, ShardNode
from shardmon.model.labels import Labels
from shardmon.model.samples import SampleBatch
from shardmon.procs import free_port


def _batch(n: int, t: int) -> SampleBatch:
    labels = [Labels.from_dict({"__name__": "m", "i": str(i)}) for i in range(n)]
    return SampleBatch.of(
        np.array([ls.series_id() for ls in labels], np.uint64), [ls.canonical() for ls in labels],
        np.arange(n, dtype=np.uint32), np.full(n, t, np.int64), np.ones(n),
    )


def test_a_full_queue_drops_the_oldest_samples_and_counts_them():
    async def main():
        # A shard address where nothing listens: every write fails as retryable and is retried.
        node = ShardNode(id=0, address=f"127.0.0.1:{free_port()}", redis_url="redis://127.0.0.1:1")
        cfg = IngestConfig(queue_max_samples=250, batch_max_samples=100, flush_interval="10ms",
                           retry_backoff_min="10ms", retry_backoff_max="50ms", write_timeout="200ms")
        fwd = Forwarder([node], cfg, sender_id="test")
        for t in range(10):
            fwd.append(_batch(100, t))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        stats = fwd.stats()
        await fwd.close(timeout_s=0.2)
        return stats, dict(fwd.dropped)

    stats, dropped = asyncio.run(main())
    # 1,000 samples appended; at most 250 queued plus one batch in flight are kept.
    assert stats["pending_samples"] <= 350
    assert dropped["queue_full"] + stats["pending_samples"] == 1000
    assert stats["shards"][0]["retries"] > 0 and "UNAVAILABLE" in stats["shards"][0]["last_error"]
    # On shutdown what was still pending is counted too.
    assert dropped["shutdown"] == stats["pending_samples"]
