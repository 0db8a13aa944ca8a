"""Recording rules (Prometheus 2.42's ``rules/recording.go``) and what every rule shares.

:class:`RuleState` holds a rule's name, expression, static labels and the health Prometheus reports in
``/api/v1/rules`` (``health`` ``unknown``/``ok``/``err``, ``last_error``, ``last_evaluation_ms``,
``evaluation_time_s``). A :class:`RecordingRule` evaluates its expression at ``ts``, renames each series to
``record`` and sets its labels; two series with the same labels after that are an error, and more series
than the group's ``limit`` too (nothing is written then).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from shardmon.model.errors import QueryExecutionError
from shardmon.model.histogram import Histogram
from shardmon.model.labels import METRIC_NAME, Labels

#: One output sample of a rule: its labels and value, a float or a native histogram (its timestamp is the
#: evaluation's).
Sample = tuple[Labels, float | Histogram]
#: How a rule queries: a PromQL text at a time (ms) -> the instant vector (a scalar as one sample without
#: labels); raises on a failed query (Prometheus's QueryFunc, see ``engine_query_func``).
QueryFunc = Callable[[str, int], list[Sample]]


class RuleError(QueryExecutionError):
    """A rule's evaluation failed for a reason of its own (duplicate label sets, over the limit)."""


class RuleState:
    """What every rule has: name, expression, static labels, health and last error."""

    kind = ""

    def __init__(self, name: str, expr: str, labels: Labels) -> None:
        self.name = name
        self.expr = expr
        self.labels = labels
        #: ``unknown`` before the first evaluation, then ``ok`` or ``err`` (Prometheus's RuleHealth).
        self.health = "unknown"
        self.last_error = ""
        self.last_evaluation_ms: int | None = None
        self.evaluation_time_s = 0.0

    def eval(self, ts_ms: int, query: QueryFunc, limit: int = 0, query_offset_ms: int = 0) -> list[Sample]:
        """The rule's output for the evaluation at slot ``ts_ms``; its query runs at ``ts_ms - query_offset_ms``
        (Prometheus 2.53's query offset), where the group writes the output."""
        raise NotImplementedError

    def key(self) -> str:
        """Name and labels, as Prometheus matches a rule across reloads (``nameAndLabels``)."""
        return self.name + str(self.labels)


class RecordingRule(RuleState):
    """A ``record`` rule."""

    kind = "recording"

    def eval(self, ts_ms: int, query: QueryFunc, limit: int = 0, query_offset_ms: int = 0) -> list[Sample]:
        out: list[Sample] = []
        static = dict(self.labels)
        name, first = (METRIC_NAME, self.name), (METRIC_NAME,)  # (name,) sorts before every (name, value)
        for labels, value in query(self.expr, ts_ms - query_offset_ms):
            if static:
                merged = dict(labels)
                merged[METRIC_NAME] = self.name
                merged.update(static)
                lbls = Labels.from_dict(merged)
            else:  # The common case: only the name set, in its place in the sorted pairs.
                at = bisect.bisect_left(labels, first)
                end = at + 1 if at < len(labels) and labels[at][0] == METRIC_NAME else at
                lbls = Labels((*labels[:at], name, *labels[end:]))
            out.append((lbls, value))
        if len({lbls for lbls, _ in out}) != len(out):
            raise RuleError("vector contains metrics with the same labelset after applying rule labels")
        if limit > 0 and len(out) > limit:
            raise RuleError(f"exceeded limit of {limit} with {len(out)} series")
        return out
