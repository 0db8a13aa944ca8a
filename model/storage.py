"""The storage seams: what the scrape loop writes to and what the PromQL engine reads from.

As Prometheus's ``storage.Appendable`` and ``storage.Queryable``, these Protocols let the scrape
loop and the engine run in-process in tests (on :class:`shardmon.model.memory.MemoryStorage`) and over the
network in production (the forwarder, the shard fan-out) without knowing the difference.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from shardmon.model.errors import QueryCanceledError, QueryError, QueryLimitError, QueryTimeoutError
from shardmon.model.labels import Labels, Matcher
from shardmon.model.samples import SampleBatch

#: What a limit of "none" is sent as where a number is needed (the shards' SeriesLimits).
NO_LIMIT = 2**63 - 1


class Series(NamedTuple):
    """One series with its samples in time order (int64 ms, float64 values, staleness markers kept).

    ``histograms`` (None: it has none in the answer): object array parallel to ``values``, a
    :class:`~shardmon.model.histogram.Histogram` where sample j is one (``values[j]`` NaN then), None where a float."""

    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray
    histograms: np.ndarray | None = None


class SeriesSet(NamedTuple):
    """The answer to a select: series sorted by labels, each at most once, and warnings.

    ``partial`` says the answer may lack series (a shard did not answer and the partial-response
    strategy is ``warn``; the warnings say which); a warning never means the answer is wrong.
    """

    series: list[Series]
    warnings: list[str]
    partial: bool = False


class SeriesColumns(NamedTuple):
    """Series laid end to end, for code that works on all their samples at once: series i is
    ``labels[i]`` with ``timestamps_ms[offsets[i]:offsets[i + 1]]`` and the same slice of ``values``."""

    labels: list[Labels]
    timestamps_ms: np.ndarray  # int64 [n_samples]
    values: np.ndarray  # float64 [n_samples]
    offsets: np.ndarray  # int64 [n_series + 1]
    #: Native histogram samples among them (None: there are none): object [n_samples], a
    #: :class:`~shardmon.model.histogram.Histogram` where sample j is one (its ``values[j]`` is then a
    #: placeholder, NaN) and None where it is a float. A series' floats and histograms are merged in time order.
    histograms: np.ndarray | None = None

    @classmethod
    def of(cls, series: Sequence[Series]) -> SeriesColumns:
        cols = cls.of_arrays([s.labels for s in series], [s.timestamps_ms for s in series],
                             [s.values for s in series])
        if any(s.histograms is not None for s in series):
            hists = np.empty(cols.values.shape[0], dtype=object)
            for s, start in zip(series, cols.offsets[:-1].tolist()):
                if s.histograms is not None:
                    hists[start:start + s.histograms.shape[0]] = s.histograms
            cols = cols._replace(histograms=hists)
        return cols

    @classmethod
    def of_arrays(cls, labels: list[Labels], timestamps: Sequence[np.ndarray], values: Sequence[np.ndarray]
                  ) -> SeriesColumns:
        """Series i being ``labels[i]``, ``timestamps[i]`` and ``values[i]``, laid end to end."""
        offsets = np.zeros(len(labels) + 1, dtype=np.int64)
        if not labels:
            return cls([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64), offsets)
        np.cumsum([t.shape[0] for t in timestamps], out=offsets[1:])
        return cls(labels, np.concatenate(timestamps).astype(np.int64, copy=False),
                   np.concatenate(values).astype(np.float64, copy=False), offsets)


class ColumnsSet(NamedTuple):
    """A select's answer as :class:`SeriesColumns` (what a Querier's optional ``select_columns`` returns)."""

    columns: SeriesColumns
    warnings: list[str]
    partial: bool = False


class LabelsResult(NamedTuple):
    """The answer to a label names or label values lookup: sorted strings, warnings, and whether it
    may lack some (as :attr:`SeriesSet.partial`)."""

    values: list[str]
    warnings: list[str]
    partial: bool = False


class QueryBudget:
    """What one query may still load from storage, until when it may run, and whether it was called off.

    One per query, shared by everything it reads (subqueries included), as Prometheus's
    ``--query.max-samples`` count and context. ``max_series`` / ``max_samples`` of 0 mean no limit.
    Samples are those loaded from storage plus, for a select with ``points_per_series``, that many
    points per series: the cells of the ``[series, steps]`` matrix the caller will build for it.

    :meth:`charge` is called by the evaluation, one thread; :meth:`check`, :meth:`cancel`,
    :meth:`time_left` and the ``remaining_*`` methods are safe from any thread (the fan-out's
    workers, the server's event loop).
    """

    def __init__(self, *, max_series: int = 0, max_samples: int = 0, timeout_s: float | None = None) -> None:
        self.max_series = max_series
        self.max_samples = max_samples
        #: The query's whole time (None: no deadline), and time.monotonic() after which it is abandoned.
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.series = 0
        self.samples = 0
        self._called_off: QueryError | None = None
        self._lock = threading.Lock()

    def remaining_series(self) -> int:
        """Series the query may still load (:data:`NO_LIMIT` without a limit)."""
        return max(0, self.max_series - self.series) if self.max_series else NO_LIMIT

    def remaining_samples(self) -> int:
        """Samples the query may still load (:data:`NO_LIMIT` without a limit)."""
        return max(0, self.max_samples - self.samples) if self.max_samples else NO_LIMIT

    def charge(self, series: int, samples: int, points_per_series: int = 0) -> None:
        """Count what a select returned; :class:`QueryLimitError` once over a limit."""
        with self._lock:
            self.series += series
            self.samples += samples + series * points_per_series
        if self.max_samples and self.samples > self.max_samples:
            raise self.over("max_samples")
        if self.max_series and self.series > self.max_series:
            raise self.over("max_series")

    def over(self, limit: str) -> QueryLimitError:
        """The error for a query over ``limit`` (``"max_samples"`` or ``"max_series"``), as Prometheus words it."""
        if limit == "max_samples":
            return QueryLimitError(
                "query processing would load too many samples into memory in query execution "
                f"(more than {self.max_samples:,}; querier.max_samples)", limit)
        return QueryLimitError(f"query would read too many series (more than {self.max_series:,}; querier.max_series)",
                               limit)

    def time_left(self) -> float | None:
        """Seconds until the deadline (0 once past it), None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def cancel(self, error: QueryError | None = None) -> None:
        """Call the query off: every later :meth:`check` raises ``error`` (the first one given wins)."""
        with self._lock:
            if self._called_off is None:
                self._called_off = error or QueryCanceledError("query canceled")

    @property
    def cancelled(self) -> bool:
        return self._called_off is not None

    def check(self) -> None:
        """Raise why the query must stop: it was called off, or it ran past its deadline."""
        if self._called_off is not None:
            raise self._called_off
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryTimeoutError("query timed out in expression evaluation")




class Appender(Protocol):
    """Where samples go.

    Contract: ``append`` takes ownership of the batch and returns without waiting for the network.
    It may refuse nothing silently: samples it cannot keep (a full queue, a permanent error) are
    counted by the implementation in a metric with the reason.
    """

    def append(self, batch: SampleBatch) -> None: ...


class Querier(Protocol):
    """Where samples come from.

    Contract: time bounds are inclusive milliseconds; ``select`` returns every series that matches
    all matchers and has a sample in ``[start_ms, end_ms]`` (with ``skip_samples`` only the labels),
    sorted by labels, replicas already merged. Matchers follow Prometheus: a missing label has the
    value ``""``; at least one matcher must not match the empty string.

    With a ``budget``, a call stops (raising its error) once the query is called off or past its
    deadline, and a select stops loading, raising :class:`~shardmon.model.errors.QueryLimitError`, as soon
    as its answer would exceed what the budget has left (``points_per_series`` counted per series,
    see :class:`QueryBudget`). The select does not charge the budget: its caller charges what it got.
    """

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False,
        budget: QueryBudget | None = None, points_per_series: int = 0,
    ) -> SeriesSet: ...

    # A Querier may also have ``select_columns`` (same arguments but ``skip_samples``, returning a
    # :class:`ColumnsSet`): the same answer laid end to end, when it holds the samples that way already
    # (the rulers' prefetch). The engine uses it when present.

    def label_names(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, budget: QueryBudget | None = None
    ) -> LabelsResult:
        """Sorted label names of the matching series."""
        ...

    def label_values(
        self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, budget: QueryBudget | None = None
    ) -> LabelsResult:
        """Sorted values of label ``name`` among the matching series."""
        ...
