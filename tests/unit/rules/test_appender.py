"""The rulers' appender: writes started from a group thread are all acknowledged by ``wait_written``, and a
write that fails is counted, not raised."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
from prometheus_client import REGISTRY

from shardmon.ingest.forwarder import WriteOutcome
from shardmon.model.errors import ShardUnavailableError
from shardmon.model.labels import Labels
from shardmon.model.samples import SampleBatch
from shardmon.rules.appender import LoopAppender


def _batch(n: int) -> SampleBatch:
    labels = [Labels.from_dict({"__name__": "r", "i": str(i)}) for i in range(n)]
    return SampleBatch.of([lb.series_id() for lb in labels], [lb.canonical() for lb in labels], np.arange(n),
                          np.zeros(n, np.int64), np.ones(n))


class _Forwarder:
    def __init__(self) -> None:
        self.written: list[int] = []

    async def write_now(self, batch: SampleBatch, timeout_s: float) -> WriteOutcome:
        await asyncio.sleep(0.01)
        if batch.num_samples == 3:
            return WriteOutcome(0, {}, ShardUnavailableError("shard 0 down"))
        self.written.append(batch.num_samples)
        return WriteOutcome(batch.num_samples, {}, None)


def _not_written() -> float:
    return REGISTRY.get_sample_value("shardmon_ruler_samples_not_written_total", {"reason": "error"}) or 0.0


def test_started_writes_are_all_acknowledged_at_wait_written_and_failures_counted():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        forwarder = _Forwarder()
        appender = LoopAppender(forwarder, loop)
        before = _not_written()
        appender.append(_batch(1))
        assert forwarder.written == [1]
        appender.append_nowait(_batch(2))
        appender.append_nowait(_batch(3))
        appender.append_nowait(_batch(4))
        appender.wait_written()
        assert sorted(forwarder.written) == [1, 2, 4]
        assert _not_written() - before == 3
        appender.wait_written()  # nothing left: returns at once
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
