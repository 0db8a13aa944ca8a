"""A ruler's writes: rule output through the shards' write path, from the group threads.

:class:`LoopAppender` is the :class:`~shardmon.model.storage.Appender` a ruler's groups write to. Each batch
goes through the :class:`~shardmon.ingest.forwarder.Forwarder`'s ``write_now`` (as the receiver writes) on
the actor's event loop. :meth:`LoopAppender.append` waits for the shards' acknowledgement, so the next
rule's query sees the output; :meth:`LoopAppender.append_nowait` only starts the write (for output no
later rule of the group reads) and :meth:`LoopAppender.wait_written` waits for those started, which a
group does at the end of its evaluation: its writes overlap its next rules' queries, and the
evaluation still ends with everything written. Refusals and failures are counted
(``shardmon_ruler_samples_not_written_total``) and logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from prometheus_client import Counter

from shardmon.ingest.forwarder import Forwarder
from shardmon.model.samples import SampleBatch

log = logging.getLogger(__name__)

#: How long one rule's output may take to reach the shards before the write counts as failed.
WRITE_TIMEOUT_S = 30.0

NOT_WRITTEN = Counter("shardmon_ruler_samples_not_written_total",
                      "Rule output samples the shards did not take, by reason (a shard's refusal reason, or "
                      "error: the write failed).", ["reason"])


class LoopAppender:
    """Writes through ``forwarder`` on ``loop`` from other threads (see the module docstring)."""

    def __init__(self, forwarder: Forwarder, loop: asyncio.AbstractEventLoop) -> None:
        self.forwarder, self.loop = forwarder, loop
        self._started: dict[int, list[tuple[SampleBatch, concurrent.futures.Future]]] = {}
        self._lock = threading.Lock()

    def _start(self, batch: SampleBatch) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(self.forwarder.write_now(batch, WRITE_TIMEOUT_S), self.loop)

    def append(self, batch: SampleBatch) -> None:
        """Write ``batch`` and wait until the shards took it (or the write failed: counted)."""
        self._settle(batch, self._start(batch))

    def append_nowait(self, batch: SampleBatch) -> None:
        """Start writing ``batch``; :meth:`wait_written` (from the same thread) waits for it."""
        future = self._start(batch)
        with self._lock:
            self._started.setdefault(threading.get_ident(), []).append((batch, future))

    def wait_written(self) -> None:
        """Wait for the writes this thread started with :meth:`append_nowait`."""
        with self._lock:
            started = self._started.pop(threading.get_ident(), [])
        for batch, future in started:
            self._settle(batch, future)

    @staticmethod
    def _settle(batch: SampleBatch, future: concurrent.futures.Future) -> None:
        try:
            out = future.result(WRITE_TIMEOUT_S + 5)
        except Exception as exc:  # noqa: BLE001 - counted; the group goes on as Prometheus's on a failed commit
            NOT_WRITTEN.labels("error").inc(batch.num_samples)
            log.warning("rule output not written (%d samples): %s", batch.num_samples, exc)
            return
        for reason, n in out.rejected.items():
            NOT_WRITTEN.labels(reason).inc(n)
        if out.error is not None:
            NOT_WRITTEN.labels("error").inc(batch.num_samples)
            log.warning("rule output not written (%d samples): %s", batch.num_samples, out.error)
