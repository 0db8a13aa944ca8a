"""The fan-out: a :class:`~shardmon.model.storage.Querier` over every shard, itself just another Querier.

Each call goes to all shards in parallel (a thread per shard call; the gRPC client blocks), and the
answers, each sorted by labels, are merged k-way. A series found on several shards (replicas) is
merged sample by sample, identical timestamps kept once. With replication factor RF, up to RF-1
failed shards lose no series (each has a replica on another shard), so the answer is complete and
says nothing. From RF failures on, a failed shard becomes a warning (``partial_response: warn``,
the answer is flagged ``partial``) or fails the whole call (``abort``), as Thanos's partial-response
strategies. (Samples written while one replica was down exist only on the others; there is no repair
yet, so a later failure of those others can hide them without a warning.)

A query cannot make the fan-out hold more than it may, nor wait on a shard that stopped answering:

- **Budget.** A select sends each shard what the query's :class:`~shardmon.model.storage.QueryBudget` has
  left; a shard stops streaming once its answer would exceed it. Frames are counted as they arrive
  (all copies of a replicated series: up to RF times the budget), and once over, or once a shard
  says it stopped, the other shards' streams are cancelled and the query fails with 422.
- **Deadlines.** Each shard call gets the query's remaining time (at most ``timeout_s``). The thread
  that waits for the shards checks the budget every few tens of milliseconds, so a query past its
  deadline or called off (its client went away) cancels its shard calls at once.
- **A shard that stops answering.** A call that receives nothing for ``response_timeout_s`` (Thanos's
  ``--store.response-timeout``) is cancelled and counts as that shard failing. So is a call still silent
  when the query nears its deadline (a quarter of its time left, at most 1 s, and nothing received for
  that long): the query then answers with the other shards' data, partial (or fails with ``abort``),
  within its timeout, rather than timing out whole for want of one shard. Each shard has its own
  threads, ``calls_per_shard`` of them: a hung shard holds at most those, never the other shards'.
  When all of a shard's threads are busy, its next calls fail at once as that shard failing
  (partial response or abort) instead of queueing behind the hung ones. By default a shard has as many
  threads as the querier evaluates queries at once (asyncio's default executor), and each query
  holds at most one call per shard, so only a shard that stopped answering uses them all up.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from shardmon.model.errors import (
    QueryCanceledError,
    QueryError,
    QueryLimitError,
    QueryUnavailableError,
    ShardmonError,
    ShardUnavailableError,
)
from shardmon.model.histogram_merge import merge_copies
from shardmon.model.labels import SEP, Matcher
from shardmon.model.promql.pushdown import AggregateSpec, Partial
from shardmon.model.promql.pushdown_replicas import Placement, disagreement
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import ColumnsSet, LabelsResult, QueryBudget, Series, SeriesColumns, SeriesSet
from shardmon.querier import metrics
from shardmon.shards.client import ShardClient, ShardTSDBStats, labels_of, series_of_batch

T = TypeVar("T")

#: How each warning about a shard that did not answer begins (the text Thanos users know). Whether an
#: answer is partial is the typed ``partial`` flag, never a test of this text.
PARTIAL_WARNING = "partial response: "
#: How often the waiting thread looks at the budget and at silent calls.
_POLL_S = 0.05
#: The share of a query's time (at most _ANSWER_RESERVE_MAX_S) kept for answering without a shard that
#: stays silent: past it, such a shard counts as failing (see the module docstring).
_ANSWER_RESERVE = 0.25
_ANSWER_RESERVE_MAX_S = 1.0


def default_calls_per_shard() -> int:
    """asyncio's default executor size, which bounds how many queries the querier evaluates at once."""
    return min(32, (os.cpu_count() or 1) + 4)


def merge_series(sets: Sequence[list[Series]], check: Callable[[], None] | None = None) -> list[Series]:
    """Merge lists of series sorted by labels into one; equal label sets are merged by timestamp.

    ``check`` (e.g. a budget's) is called every few thousand series, to stop a long merge.
    """
    if len(sets) == 1:
        return sets[0]
    out: list[Series] = []
    for i, s in enumerate(heapq.merge(*sets, key=lambda s: s.labels)):
        if check is not None and i % 4096 == 4095:
            check()
        if out and out[-1].labels == s.labels:
            out[-1] = merge_copies(out[-1], s)
        else:
            out.append(s)
    return out


class _Cancellable(Protocol):
    def cancel(self) -> bool | None: ...


class _Call:
    """One shard call of one fan-out: when it last received something, and how to end it early."""

    def __init__(self, shard_id: int) -> None:
        self.shard_id = shard_id
        self.last_activity = time.monotonic()
        #: Why the waiting thread ended the call (its failure then reads as this), or None.
        self.reason: ShardmonError | None = None
        self._handles: list[_Cancellable] = []
        self._lock = threading.Lock()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def attach(self, handle: _Cancellable) -> None:
        """A gRPC call to cancel if the call must end (a call may run several); cancelled at once if it
        already must."""
        with self._lock:
            self._handles.append(handle)
            stop = self.reason is not None
        if stop:
            handle.cancel()

    def stop(self, reason: ShardmonError) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            handles = list(self._handles)
        for handle in handles:
            handle.cancel()


class _Unary(NamedTuple):
    """A shard call that needs no thread of its own: ``start(client)`` starts it from the calling thread and
    gives its future (``add_done_callback``, ``cancel``), ``finish(client, future)`` reads its answer once done
    (raising as the client's blocking call would). Every shard's call starts at once, and the answers wake the
    waiting thread directly (no hop through a pool thread)."""

    start: Callable[[ShardClient], _Cancellable]
    finish: Callable[[ShardClient, object], object]


class _Shard:
    """A shard's client and its own threads (its share of the fan-out)."""

    def __init__(self, client: ShardClient, calls: int) -> None:
        self.client = client
        self.calls = calls
        self.pool = ThreadPoolExecutor(max_workers=calls, thread_name_prefix=f"fanout-{client.shard_id}")
        self._in_flight = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._in_flight >= self.calls:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _drain(stream, call: _Call, tally: _Tally | None) -> list[Series]:
    """Every series of one shard's Series stream, each part counted (``tally``) as it arrives."""
    out: list[Series] = []
    for part in stream:
        call.touch()
        if tally is not None:
            tally.add(part)
        out.extend(part)
    metrics.SHARD_RESPONSE_BYTES.labels("Series").inc(getattr(stream, "bytes_received", 0))
    return out


def _drain_batches(stream, call: _Call, tally: _Tally | None) -> list[SampleBatch]:
    """Every frame of one shard's Series stream as columns, each counted (``tally``) as it arrives."""
    out: list[SampleBatch] = []
    for batch in stream.batches():
        call.touch()
        if tally is not None:
            tally.add_counts(batch.num_series, batch.num_samples)
        out.append(batch)
    metrics.SHARD_RESPONSE_BYTES.labels("Series").inc(getattr(stream, "bytes_received", 0))
    return out


def columns_of(answers: Sequence[list[SampleBatch]], check: Callable[[], None] | None = None) -> SeriesColumns:
    """The shards' answers (each a list of frames, in label order) as one :class:`SeriesColumns` sorted by
    labels, without a Python object per series but the labels (memoised per key).

    Keys with the separator replaced by NUL sort as the label sets do, so one C sort of bytes orders the
    series of several shards. Two series with the same id (replicas), or a key holding a NUL, take the
    exact path instead: :class:`Series` merged by :func:`merge_series`. Native histograms are merged into
    their series afterwards (:func:`_with_histograms`), the floats staying columns.
    """
    frames = [b for batches in answers for b in batches if b.num_series]
    if not frames:
        return SeriesColumns.of([])
    keys = [k for b in frames for k in b.series.keys()]
    counts = np.concatenate([np.bincount(b.sample_series, minlength=b.num_series) for b in frames]).astype(np.int64)
    ts = np.concatenate([b.timestamps_ms for b in frames]).astype(np.int64, copy=False)
    vals = np.concatenate([b.values for b in frames]).astype(np.float64, copy=False)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    order = None
    if sum(1 for batches in answers if any(b.num_series for b in batches)) > 1:
        ids = np.concatenate([b.series.ids for b in frames])
        if any(_NUL in k for k in keys):
            return _exact_columns(answers, check)
        sort_keys = [k.replace(SEP, _NUL) for k in keys]
        order = np.array(sorted(range(len(keys)), key=sort_keys.__getitem__), dtype=np.int64)
        if check is not None:
            check()
        sorted_ids = ids[order]
        if (sorted_ids[1:] == sorted_ids[:-1]).any():  # Replicas of one series: merge them sample by sample.
            return _exact_columns(answers, check)
        starts, counts = offsets[:-1][order], counts[order]
        np.cumsum(counts, out=offsets[1:])
        take = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(starts - offsets[:-1], counts)
        ts, vals = ts[take], vals[take]
        keys = [keys[i] for i in order.tolist()]
    labels = [labels_of(k) for k in keys]
    if any(b.num_histograms for b in frames):
        return _with_histograms(frames, order, labels, ts, vals, offsets)
    return SeriesColumns(labels, ts, vals, offsets)


def _with_histograms(frames: list[SampleBatch], order: np.ndarray | None, labels: list, ts: np.ndarray,
                     vals: np.ndarray, offsets: np.ndarray) -> SeriesColumns:
    """The float columns (series in their final order, ``order`` the permutation of the frames' series that
    made it, None for none) with the frames' histograms merged in, each series' samples in time order. The
    floats stay arrays; only the histograms are objects."""
    n = len(labels)
    row_of = np.arange(n, dtype=np.int64)
    if order is not None:
        row_of[order] = np.arange(n, dtype=np.int64)  # frames' series position -> row
    bases = np.cumsum([0] + [b.num_series for b in frames[:-1]])
    h_rows, h_ts, hists = [], [], []
    for b, base in zip(frames, bases.tolist()):
        if b.num_histograms:
            h_rows.append(row_of[base + b.histograms.sample_series.astype(np.int64)])
            h_ts.append(b.histograms.timestamps_ms)
            hists.extend(b.histograms.histograms())
    rows = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))] + h_rows)
    all_ts = np.concatenate([ts] + h_ts).astype(np.int64, copy=False)
    objs = np.empty(all_ts.shape[0], dtype=object)
    objs[ts.shape[0]:] = hists
    all_vals = np.concatenate([vals, np.full(len(hists), np.nan)])
    by = np.lexsort((all_ts, rows))
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=new_offsets[1:])
    return SeriesColumns(labels, all_ts[by], all_vals[by], new_offsets, objs[by])


_NUL = b"\x00"


def _exact_columns(answers: Sequence[list[SampleBatch]], check: Callable[[], None] | None) -> SeriesColumns:
    sets = [[s for b in batches for s in series_of_batch(b)] for batches in answers]
    return SeriesColumns.of(merge_series(sets, check))


class _Tally:
    """What the frames of one select brought so far, over all shards (thread-safe)."""

    def __init__(self, budget: QueryBudget, points_per_series: int, copies: int) -> None:
        self.budget = budget
        self.points_per_series = points_per_series
        # Every copy of a replicated series is in memory until the merge: allow RF copies here; the
        # caller charges the merged answer exactly.
        self.max_series = budget.remaining_series() * copies
        self.max_samples = budget.remaining_samples() * copies
        self.series = self.samples = 0
        self._lock = threading.Lock()

    def add(self, part: list[Series]) -> None:
        self.add_counts(len(part), sum(s.timestamps_ms.shape[0] for s in part))

    def add_counts(self, n: int, samples: int) -> None:
        k = samples + n * self.points_per_series
        with self._lock:
            self.series += n
            self.samples += k
            series, samples = self.series, self.samples
        if samples > self.max_samples:
            raise self.budget.over("max_samples")
        if series > self.max_series:
            raise self.budget.over("max_series")


class FanoutQuerier:
    """Reads from every shard and merges; see the module docstring for failures, budgets and deadlines."""

    def __init__(self, clients: Sequence[ShardClient], *, partial_response: str = "warn", timeout_s: float = 120.0,
                 replication_factor: int = 1, response_timeout_s: float = 30.0,
                 calls_per_shard: int | None = None) -> None:
        self.clients = list(clients)
        #: Every series is on this many distinct shards: up to RF-1 of them failing loses no series.
        self.replication_factor = replication_factor
        self.partial_response = partial_response
        self.timeout_s = timeout_s
        self.response_timeout_s = response_timeout_s
        calls = calls_per_shard or default_calls_per_shard()
        self._shards = [_Shard(c, calls) for c in self.clients]
        #: The shards that did not answer the last aggregation push-down: not counted on by the next one.
        self._down: frozenset[int] = frozenset()

    def _call_timeout(self, budget: QueryBudget | None) -> float:
        left = budget.time_left() if budget is not None else None
        return self.timeout_s if left is None else max(0.001, min(self.timeout_s, left))

    def _all(self, work: Callable[[ShardClient, _Call], T] | _Unary, budget: QueryBudget | None
             ) -> tuple[list[T], list[str], bool]:
        """Run ``work`` on every shard, each in the shard's own threads (a :class:`_Unary` call: started from this
        thread, each counted in its shard's share until it ends), and wait for them all while
        watching the budget and silent calls. Up to RF-1 failed shards leave the answer complete (each
        series has a replica among the others); more make it partial (warnings, ``partial``), or an
        error with ``abort``. A :class:`QueryError` from any shard (over the budget) ends the others."""
        if budget is not None:
            budget.check()
        started: dict[Future, tuple[int, _Shard, _Call]] = {}
        outcome: dict[int, T] = {}
        failed: list[tuple[ShardClient, ShardmonError]] = []
        for i, sh in enumerate(self._shards):
            if not sh.try_acquire():
                metrics.SHARD_REQUESTS.labels(str(sh.client.shard_id), "busy").inc()
                failed.append((sh.client, ShardUnavailableError(
                    f"all {sh.calls} of its fan-out threads are waiting on it (it does not answer)")))
                continue
            call = _Call(sh.client.shard_id)
            try:
                if isinstance(work, _Unary):
                    future = self._start_unary(sh, call, work)
                else:
                    future = sh.pool.submit(self._run, sh, call, work)
            except RuntimeError:  # The querier is closing.
                sh.release()
                raise QueryUnavailableError("the querier is shutting down") from None
            started[future] = (i, sh, call)
        pending = set(started)
        reserve = None
        if budget is not None and budget.timeout_s is not None:
            reserve = min(_ANSWER_RESERVE_MAX_S, _ANSWER_RESERVE * budget.timeout_s)
        try:
            while pending:
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    i, sh, call = started[future]
                    shard = str(sh.client.shard_id)
                    try:
                        outcome[i] = work.finish(sh.client, future.result()) if isinstance(work, _Unary) \
                            else future.result()
                        metrics.SHARD_REQUESTS.labels(shard, "ok").inc()
                    except QueryLimitError as exc:
                        metrics.SHARD_REQUESTS.labels(shard, "limit").inc()
                        raise (budget.over(exc.limit) if budget is not None else exc) from None
                    except QueryError:
                        metrics.SHARD_REQUESTS.labels(shard, "cancelled").inc()
                        raise
                    except ShardmonError as exc:
                        reason = call.reason or exc
                        metrics.SHARD_REQUESTS.labels(shard, "stalled" if call.reason else "error").inc()
                        failed.append((sh.client, reason))
                if not pending:
                    break
                if budget is not None:
                    budget.check()
                now = time.monotonic()
                left = budget.time_left() if reserve is not None else None
                for future in pending:
                    _, sh, call = started[future]
                    silent = now - call.last_activity
                    if call.reason is not None:
                        continue
                    if silent > self.response_timeout_s:
                        call.stop(ShardUnavailableError(f"sent nothing for {silent:.1f}s (querier.shard_response_timeout)"))
                    elif left is not None and left <= reserve and silent >= reserve:
                        call.stop(ShardUnavailableError(
                            f"sent nothing for {silent:.1f}s, with {left:.1f}s left before the query's deadline"))
        finally:
            for future in pending:  # Leaving early (over budget, timed out, called off): end the rest.
                _, sh, call = started[future]
                if call.reason is None:
                    metrics.SHARD_REQUESTS.labels(str(sh.client.shard_id), "cancelled").inc()
                call.stop(QueryCanceledError("the query ended"))
            if pending:  # A cancelled call ends at once; let its thread go back to its shard's share.
                wait(pending, timeout=1.0)
        results = [outcome[i] for i in sorted(outcome)]
        if not failed or len(failed) < self.replication_factor:
            return results, [], False
        if self.partial_response == "abort":
            c, exc = failed[0]
            raise QueryUnavailableError(f"shard {c.shard_id} failed: {exc}") from exc
        failed.sort(key=lambda f: f[0].shard_id)
        return results, [f"{PARTIAL_WARNING}shard {c.shard_id} ({c.address}) failed: {exc}" for c, exc in failed], True

    @staticmethod
    def _run(sh: _Shard, call: _Call, work: Callable[[ShardClient, _Call], T]) -> T:
        try:
            call.touch()  # Started: the silence is counted from here.
            return work(sh.client, call)
        finally:
            sh.release()

    @staticmethod
    def _start_unary(sh: _Shard, call: _Call, work: _Unary) -> Future:
        """Start a :class:`_Unary` call on ``sh``; the future is done (with the call's future) when the call ends."""
        done: Future = Future()
        try:
            call.touch()
            started = work.start(sh.client)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, as a pool's future would
            sh.release()
            done.set_exception(exc)
            return done
        call.attach(started)

        def finished(f) -> None:
            sh.release()
            done.set_result(f)

        started.add_done_callback(finished)  # type: ignore[attr-defined]
        return done

    def _round_budget(self, budget: QueryBudget | None, points_per_series: int) -> tuple[_Tally | None, dict]:
        """A fan-out round's tally of what the shards send (each sample counted once over the copies) and the
        limits each shard is told (what is left of the budget)."""
        copies = max(1, min(self.replication_factor, len(self.clients)))
        tally = _Tally(budget, points_per_series, copies) if budget is not None else None
        limits = {}
        if budget is not None and (budget.max_series or budget.max_samples):
            limits = dict(max_series=budget.remaining_series(), max_samples=budget.remaining_samples(),
                          points_per_series=points_per_series)
        return tally, limits

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
        budget: QueryBudget | None = None, points_per_series: int = 0,
    ) -> SeriesSet:
        tally, limits = self._round_budget(budget, points_per_series)

        def fetch(client: ShardClient, call: _Call) -> list[Series]:
            stream = client.series_stream(matchers, start_ms, end_ms, skip_samples=skip_samples,
                                          timeout_s=self._call_timeout(budget), **limits)
            call.attach(stream)
            return _drain(stream, call, tally)

        results, warnings, partial = self._all(fetch, budget)
        merged = merge_series(results, budget.check if budget is not None else None) if results else []
        metrics.SERIES_FETCHED.inc(len(merged))
        metrics.SAMPLES_FETCHED.inc(sum(s.timestamps_ms.shape[0] for s in merged))
        return SeriesSet(merged, warnings, partial)

    def select_columns(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, budget: QueryBudget | None = None,
        points_per_series: int = 0,
    ) -> ColumnsSet:
        """:meth:`select` laid end to end (:func:`columns_of`), what the engine's selectors take."""
        return self.select_many_columns([(matchers, start_ms, end_ms)], budget=budget,
                                        points_per_series=points_per_series)[0]

    def select_many_columns(
        self, requests: Sequence[tuple[Sequence[Matcher], int, int]], *, budget: QueryBudget | None = None,
        points_per_series: int = 0,
    ) -> list[ColumnsSet]:
        """Several selects ``(matchers, start_ms, end_ms)`` in one fan-out round, each answer laid end to end
        (:func:`columns_of`), for callers that work on all the samples at once (the rulers' prefetch). Each
        shard's thread starts all of its Series calls at once and then reads them in turn, so the shards
        answer them together (one thread hop per shard, not per select). The budget and the failures are the
        whole round's, as for one select: every answer carries the round's warnings and ``partial``."""
        if not requests:
            return []
        tally, limits = self._round_budget(budget, points_per_series)

        def fetch(client: ShardClient, call: _Call) -> list[list[SampleBatch]]:
            timeout_s = self._call_timeout(budget)
            streams = []
            for matchers, start_ms, end_ms in requests:
                stream = client.series_stream(matchers, start_ms, end_ms, timeout_s=timeout_s, **limits)
                call.attach(stream)
                streams.append(stream)
            return [_drain_batches(stream, call, tally) for stream in streams]

        results, warnings, partial = self._all(fetch, budget)
        check = budget.check if budget is not None else None
        out = []
        for r in range(len(requests)):
            cols = columns_of([answers[r] for answers in results], check)
            metrics.SERIES_FETCHED.inc(len(cols.labels))
            metrics.SAMPLES_FETCHED.inc(cols.timestamps_ms.shape[0])
            out.append(ColumnsSet(cols, list(warnings), partial))
        return out

    def aggregate(self, spec: AggregateSpec, *, budget: QueryBudget | None = None
                  ) -> tuple[list[Partial], list[str], bool] | None:
        """The aggregation push-down: every shard's partial aggregate of ``spec`` (in shard order), the warnings
        and ``partial`` as for a select; or None where the push-down cannot vouch for the exact answer (the caller
        then selects), counted by outcome.

        With replication (RF > 1) the request carries the placement and the shards counted on (those that
        answered the last push-down): each shard aggregates the series whose first owner among them it is,
        and answers digests of every copy it read (:mod:`shardmon.model.promql.pushdown_replicas`). None when
        a shard counted on did not answer, or one that answered holds series none counted on covers
        (``unavailable``: the next call counts on those that answered), when two copies of some series differ
        in the range read (``diverged``), or when a shard holds series the placement does not put on it
        (``misplaced``).

        Each shard reads within what the budget has left (as a select); what they aggregated is charged after."""
        _, limits = self._round_budget(budget, spec.n_steps)
        ids = tuple(c.shard_id for c in self.clients)
        live = ()
        if self.replication_factor > 1:
            live = tuple(i for i in ids if i not in self._down)
            spec = replace(spec, placement=Placement(ids, self.replication_factor, live))

        def finish(client: ShardClient, future) -> tuple[int, Partial]:
            # The shard's read warnings are left out, as the Series frames' are (select's answers lack them).
            partial, _, size = client.aggregate_answer(spec, future)
            metrics.SHARD_RESPONSE_BYTES.labels("Aggregate").inc(size)
            return client.shard_id, partial

        timeout_s = self._call_timeout(budget)
        start = lambda client: client.start_aggregate(spec, timeout_s=timeout_s, **limits)  # noqa: E731
        answers, warnings, partial = self._all(_Unary(start, finish), budget)
        partials = [p for _, p in answers]
        if any(p.histograms for p in partials):  # the shards aggregate floats only
            metrics.PUSHDOWN.labels("histograms").inc()
            return None
        if spec.placement is not None:
            answered = {i for i, _ in answers}
            self._down = frozenset(ids) - answered
            why = disagreement({i: (p.digests, p.misplaced) for i, p in answers}, live)
            if why is not None:
                metrics.PUSHDOWN.labels(why).inc()
                return None
        if budget is not None:
            budget.charge(sum(p.series for p in partials), sum(p.samples for p in partials), spec.n_steps)
        return partials, warnings, partial

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                    budget: QueryBudget | None = None) -> LabelsResult:
        results, warnings, partial = self._all(
            lambda c, call: c.label_names(matchers, start_ms, end_ms, timeout_s=self._call_timeout(budget),
                                          attach=call.attach), budget)
        return LabelsResult(sorted(set().union(*results)) if results else [], warnings, partial)

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                     budget: QueryBudget | None = None) -> LabelsResult:
        results, warnings, partial = self._all(
            lambda c, call: c.label_values(name, matchers, start_ms, end_ms, timeout_s=self._call_timeout(budget),
                                           attach=call.attach), budget)
        return LabelsResult(sorted(set().union(*results)) if results else [], warnings, partial)

    def metadata(self, metric: str = "", limit: int = 0, *,
                 budget: QueryBudget | None = None) -> tuple[dict[str, list[dict]], list[str], bool]:
        """Metric metadata from every shard: family -> distinct ``{type, help, unit}``, warnings, partial."""
        results, warnings, partial = self._all(
            lambda c, call: c.metadata(metric, limit, timeout_s=self._call_timeout(budget), attach=call.attach),
            budget)
        out: dict[str, list[dict]] = {}
        for entries in results:
            for name, typ, help_, unit in entries:
                item = {"type": typ, "help": help_, "unit": unit}
                if item not in out.setdefault(name, []):
                    out[name].append(item)
        if limit:
            out = {n: out[n] for n in sorted(out)[:limit]}
        return out, warnings, partial

    def tsdb_status(self, selectors: Sequence[Sequence[Matcher]], *, live_shard_ids: Sequence[int] | None = None,
                    budget: QueryBudget | None = None) -> tuple[list[ShardTSDBStats], list[str], bool]:
        """Every shard's head statistics (``/api/v1/status/tsdb``; querier/tsdb_status.py merges them). With
        replication each shard counts the series whose first replica among ``live_shard_ids`` (default: every
        shard) it is, so that the shards' counts add up to each series once."""
        own: dict = {}
        if self.replication_factor > 1:
            ids = [c.shard_id for c in self.clients]
            own = dict(shard_ids=ids, replication_factor=self.replication_factor,
                       live_shard_ids=ids if live_shard_ids is None else list(live_shard_ids))
        return self._all(lambda c, call: c.tsdb_status(selectors, timeout_s=self._call_timeout(budget),
                                                       attach=call.attach, **own), budget)

    def close(self) -> None:
        for sh in self._shards:
            sh.pool.shutdown(wait=False, cancel_futures=True)
        for c in self.clients:
            c.close()


__all__ = ["FanoutQuerier", "PARTIAL_WARNING", "default_calls_per_shard", "merge_series"]
