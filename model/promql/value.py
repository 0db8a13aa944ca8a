"""The values the PromQL evaluator passes between nodes, each over the whole step grid at once.

A query is evaluated once for all its steps, not once per step: every value holds the answer of its
sub-expression at every step of the grid (an instant query is a grid of one step). So the work per
node is a Python loop over series at most, with numpy doing the steps.

- :class:`Scalar`: one float per step.
- :class:`InstantVector`: series x steps matrices of values and of presence (a series has a value at
  a step or it has not; absent cells hold an unspecified value).
- :class:`RangeVector`: the raw samples a range selector fetched, every series' laid end to end
  (offsets say where each begins), and the window each step looks at, ``[end - range_ms, end]``
  inclusive for each ``end`` in ``window_ends``. Functions of range vectors find their windows with
  ``searchsorted``.

It also holds the evaluation context (the grid, the storage, the budget) and the error for a
feature that is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

import numpy as np

from shardmon.model.errors import BadQueryError, QueryExecutionError
from shardmon.model.labels import Labels, Matcher
from shardmon.model.storage import Querier, QueryBudget, SeriesColumns


class UnsupportedQueryError(BadQueryError):
    """A well-formed query that uses a PromQL feature this engine does not implement yet.

    It is a :class:`BadQueryError` (HTTP 400) so that clients see it as a query problem, and a
    class of its own so that the script-test runner can count such cases apart from failures.
    """


def not_supported(what: str) -> UnsupportedQueryError:
    """The error for a PromQL feature not implemented yet; ``what`` names it (``"function 'abs'"``)."""
    return UnsupportedQueryError(f"{what} not supported yet")


def duration_ms(delta: timedelta | None) -> int:
    """A parser duration (``datetime.timedelta``, possibly negative, or None) in milliseconds."""
    if delta is None:
        return 0
    # Integer arithmetic: going through float seconds could round a long duration by a millisecond.
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class Scalar(NamedTuple):
    """A scalar expression's value at each step (float64, one per step)."""

    values: np.ndarray


class InstantVector(NamedTuple):
    """An instant vector over the grid: ``values[i, k]`` is series i at step k where ``present[i, k]``.

    Rows need not be sorted or have any value; labels must be unique among rows that have a value
    at the same step (checked where an operation can break it, e.g. by dropping ``__name__``).
    """

    labels: list[Labels]
    values: np.ndarray  # float64 [n_series, n_steps]
    present: np.ndarray  # bool [n_series, n_steps]
    #: For an instant query, the order to present the rows in (``sort``, ``sort_desc``, ``topk``...);
    #: None means sorted by labels. Only the outermost node's order matters.
    order: np.ndarray | None = None
    #: The timestamp (int64 ms) of the sample each cell holds, set only by a vector selector asked
    #: for it, for ``timestamp()``; None means the step times.
    sample_ms: np.ndarray | None = None
    #: Native histograms (None: every cell is a float): object [n_series, n_steps], a
    #: :class:`~shardmon.model.histogram.Histogram` in a present cell that holds one (``values`` there is
    #: NaN), None elsewhere.
    histograms: np.ndarray | None = None


class RangeVector(NamedTuple):
    """A range vector over the grid: samples per series, laid end to end, and the window each step sees.

    Series i is ``labels[i]`` with samples ``timestamps[offsets[i]:offsets[i + 1]]`` (and the same slice of
    ``values``) in time order, staleness markers already removed. Step k looks at the samples in
    ``[window_ends[k] - range_ms, window_ends[k]]`` (both ends inclusive, as Prometheus 2.x), where
    ``window_ends`` is the step time minus the selector's offset.
    """

    labels: list[Labels]
    timestamps: np.ndarray  # int64 [n_samples]
    values: np.ndarray  # float64 [n_samples]
    offsets: np.ndarray  # int64 [n_series + 1]
    window_ends: np.ndarray  # int64 [n_steps]
    range_ms: int
    #: Every series has the same metric name (a selector with a ``__name__`` equality): dropping the name
    #: leaves the label sets distinct.
    one_name: bool = False
    #: Native histograms among the samples (None: all floats): object [n_samples] parallel to ``values``,
    #: as :attr:`~shardmon.model.storage.SeriesColumns.histograms`.
    histograms: np.ndarray | None = None

    def series(self) -> Iterator[tuple[Labels, np.ndarray, np.ndarray]]:
        """Each series' labels, timestamps and values (views)."""
        bounds = self.offsets.tolist()
        for i, lbls in enumerate(self.labels):
            a, b = bounds[i], bounds[i + 1]
            yield lbls, self.timestamps[a:b], self.values[a:b]


Value = Scalar | InstantVector | RangeVector


@dataclass
class EvalContext:
    """What every node of one query evaluation shares: the step grid, the storage, the budget.

    ``steps`` are the evaluation timestamps (int64 ms). ``budget`` is the query's limits, deadline
    and cancellation (shared with its subqueries' contexts). ``warnings`` collects the Querier's
    warnings, each once, in the order they first came; ``partial`` says whether any select's answer
    may lack series.
    """

    querier: Querier
    steps: np.ndarray
    lookback_delta_ms: int
    budget: QueryBudget = field(default_factory=QueryBudget)
    warnings: list[str] = field(default_factory=list)
    #: Prometheus 2.53's info annotations (``PromQL info: ...``), each once, as ``warnings``.
    infos: list[str] = field(default_factory=list)
    #: The query's start and end (ms), what ``@ start()`` and ``@ end()`` stand for, also inside a
    #: subquery (whose own grid is ``steps``); None stands for the first and the last step.
    query_start_ms: int | None = None
    query_end_ms: int | None = None
    #: The step of a subquery that names none (``x[5m:]``), Prometheus's global evaluation interval.
    subquery_step_ms: int = 60_000
    #: Aggregations may be computed by the shards (``querier.aggregation_pushdown``; see
    #: ``shardmon.querier.promql.pushdown``).
    aggregation_pushdown: bool = False
    #: Shared with the contexts of subqueries (a one-element list, so that ``dataclasses.replace`` shares it).
    _partial: list[bool] = field(default_factory=lambda: [False])

    @property
    def n_steps(self) -> int:
        return int(self.steps.shape[0])

    @property
    def partial(self) -> bool:
        return self._partial[0]

    def check_deadline(self) -> None:
        """Raise once the query must stop: :class:`QueryTimeoutError` past its timeout,
        :class:`~shardmon.model.errors.QueryCanceledError` when its client went away. Cheap: long loops call it."""
        self.budget.check()

    def charge_points(self, points: int) -> None:
        """Count ``points`` cells the evaluation is about to allocate (e.g. a subquery's grid) against
        ``querier.max_samples``, before allocating them."""
        self.budget.charge(0, points)

    def select_columns(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *,
                       points_per_series: int = 0) -> SeriesColumns:
        """Fetch from the Querier within the budget, the series laid end to end (its ``select_columns`` when
        it has one), keeping its warnings, and charge what came.

        ``points_per_series`` is what the caller will allocate per series besides its samples (a
        vector selector's row of the ``[series, steps]`` matrix): charged with each series, so a
        matrix over the budget is refused before it is built, and the shards stop loading early.
        """
        self.check_deadline()
        columns = getattr(self.querier, "select_columns", None)
        if columns is not None:
            cols, warnings, partial = columns(matchers, start_ms, end_ms, budget=self.budget,
                                              points_per_series=points_per_series)
        else:
            found = self.querier.select(matchers, start_ms, end_ms, budget=self.budget,
                                        points_per_series=points_per_series)
            cols, warnings, partial = SeriesColumns.of(found.series), found.warnings, found.partial
        self.note(warnings, partial)
        self.budget.charge(len(cols.labels), cols.timestamps_ms.shape[0], points_per_series)
        self.check_deadline()
        return cols


    def warn(self, message: str) -> None:
        """Add a warning annotation (Prometheus's ``annotations.New...Warning``: HTTP ``warnings``), once."""
        if message not in self.warnings:
            self.warnings.append(message)

    def info(self, message: str) -> None:
        """Add an info annotation (Prometheus 2.53's ``annotations.New...Info``: HTTP ``infos``), once."""
        if message not in self.infos:
            self.infos.append(message)

    def note(self, warnings: Sequence[str], partial: bool) -> None:
        """Keep a read's warnings (each once) and whether its answer may lack series."""
        for warning in warnings:
            self.warn(warning)
        if partial:
            self._partial[0] = True


def check_unique_labels(labels: Sequence[Labels], present: np.ndarray) -> None:
    """Raise Prometheus's error when two series that have values carry the same label set.

    As Prometheus 2.x's ``Matrix.ContainsSameLabelset``, this looks at whole series over the query
    range: two series with the same labels clash even if their values fall on different steps.
    """
    rows = np.flatnonzero(present.any(axis=1)).tolist()
    with_values = labels if len(rows) == len(labels) else [labels[r] for r in rows]
    if len(set(with_values)) != len(with_values):
        raise QueryExecutionError("vector cannot contain metrics with the same labelset")
