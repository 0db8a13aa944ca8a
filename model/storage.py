"""The storage seams: what the scrape loop writes to and what the PromQL engine reads from.

As Prometheus's ``storage.Appendable`` and ``storage.Queryable``, these Protocols let the scrape
loop and the engine run in-process in tests (on :class:`model.memory.MemoryStorage`) and over the
network in production (the forwarder, the shard fan-out) without knowing the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from model.labels import Labels, Matcher
from model.samples import SampleBatch

#: How every warning about a shard that did not answer begins.
PARTIAL_PREFIX = "partial response: "


def is_partial(warnings: Sequence[str]) -> bool:
    """Whether these warnings say an answer may lack the series of a shard that did not answer."""
    return any(w.startswith(PARTIAL_PREFIX) for w in warnings)


class Series(NamedTuple):
    """One series with its samples in time order (int64 ms, float64 values, staleness markers kept)."""

    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray


class SeriesSet(NamedTuple):
    """The answer to a select: series sorted by labels, each at most once, and warnings.

    A warning means the answer may be incomplete (a shard was down and the partial-response
    strategy is ``warn``); it never means the answer is wrong.
    """

    series: list[Series]
    warnings: list[str]


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
    """

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, skip_samples: bool = False
    ) -> SeriesSet: ...

    def label_names(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> tuple[list[str], list[str]]:
        """Sorted label names of the matching series, and warnings."""
        ...

    def label_values(
        self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> tuple[list[str], list[str]]:
        """Sorted values of label ``name`` among the matching series, and warnings."""
        ...
