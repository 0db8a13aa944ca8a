"""The label index: postings from label pairs to series, answering the four matcher types.

Postings are arrays (``array('q')``, 8 bytes a series, no Python int per entry) of series idx in
increasing order (series are numbered as they arrive), copied into numpy arrays for set operations. Prometheus's empty-value rule holds: a series without a label
has it with the value ``""``, so a matcher that matches ``""`` also selects series lacking the label.

A regex matcher is answered from the label's values, not from the series: a plain alternation of
literals (``a|b|c``) is looked up directly; otherwise only the values in the byte range RE2 says a match
can lie in (``api/v1/.*``: the values starting with ``api/v1/``) are matched, in one batch. With RE2
each value costs linear time, but a label with a million values still takes about a second, so
:meth:`LabelIndex.select_async` runs a scan of more than ``OFFLOAD_VALUES`` values (or the sort of
that many) in a worker thread, on a snapshot of the values: the event loop keeps acknowledging writes
meanwhile. Values only ever get added, so what was added during the scan is matched on the loop when
the scan returns, and the answer is the one the index gives at that moment.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.regex import sorted_range

#: A regex scan (or sort) over more values than this leaves the event loop (select_async).
OFFLOAD_VALUES = 20_000

_EMPTY = np.empty(0, np.int64)


class _RegexScan:
    """The values of one label that decide a regex matcher, worked out from a snapshot of the values.

    ``want_hits``: the answer is built from the values the regex matches; else (a regex that matches
    ``""``, whose complement is smaller) from those it does not match. ``negate``: those values' series
    are excluded from the result rather than selected.
    """

    __slots__ = ("name", "regex", "want_hits", "negate", "found", "_literal", "_snapshot", "_sorted", "_n", "heavy")

    def __init__(self, index: LabelIndex, m: Matcher):
        rx = m.regex
        self.name, self.regex = m.name, rx
        self.want_hits = not rx.fullmatch("")
        self.negate = (m.type is MatchType.RE) != self.want_hits
        self.found: list[str] | None = None
        self._literal = False
        self._snapshot: list[str] = []
        self._sorted = False
        self._n = 0
        self.heavy = False
        values = index._postings.get(m.name, {})
        literals = rx.literals
        if literals is not None:  # a set matcher: no scan at all
            self._literal = True
            if self.want_hits:
                self.found = [v for v in literals if v in values]
            else:
                self.found = list(values.keys() - literals)
            return
        order = index._order.get(m.name, [])
        self._n = n = len(order)
        cached = index._sorted_values.get(m.name)
        if rx.possible_range() is not None and cached is not None and len(cached) == n:
            # Never mutated (replaced when a value is added): a snapshot as it is.
            self._snapshot, self._sorted = cached, True
            lo, hi = sorted_range(cached, rx)
            self.heavy = hi - lo > OFFLOAD_VALUES
        else:
            # Every value is a candidate, or they must be sorted first. A worker thread gets a copy.
            self.heavy = n > OFFLOAD_VALUES
            self._snapshot = order[:n] if self.heavy else order

    def run(self) -> list[str] | None:
        """Match the snapshot (safe in a worker thread: touches nothing of the index). Returns the
        values sorted by this scan, for the index to keep, or None."""
        if self.found is not None:
            return None
        rx, values = self.regex, self._snapshot
        sorted_now = None
        if rx.possible_range() is not None:
            if not self._sorted:
                values = sorted_now = sorted(values)
            lo, hi = sorted_range(values, rx)
        else:
            lo, hi = 0, len(values)
        candidates = values[lo:hi] if (lo, hi) != (0, len(values)) else values
        if self.want_hits:
            self.found = rx.select(candidates)
        else:
            self.found = values[:lo] + rx.partition(candidates)[1] + values[hi:]
        return sorted_now

    def finish(self, index: LabelIndex, sorted_now: list[str] | None) -> list[str]:
        """On the loop: keep a sort that is still current, match values added since the snapshot."""
        assert self.found is not None
        if self._literal:
            return self.found
        order = index._order.get(self.name, [])
        if sorted_now is not None and len(order) == len(sorted_now):
            index._sorted_values[self.name] = sorted_now
        if len(order) > self._n:
            hits, misses = self.regex.partition(order[self._n:])
            self.found += hits if self.want_hits else misses
        return self.found


class _Selection:
    """Intersects the matchers' postings one by one; excluded postings are subtracted at the end."""

    __slots__ = ("count", "result", "excluded")

    def __init__(self, count: int):
        self.count = count
        self.result: np.ndarray | None = None
        self.excluded: list[np.ndarray] = []

    def add(self, postings: np.ndarray, negate: bool) -> bool:
        """Take one matcher's answer; True when the result is already empty."""
        if negate:
            self.excluded.append(postings)
        elif self.result is None:
            self.result = postings
        else:
            self.result = np.intersect1d(self.result, postings, assume_unique=True)
        return self.result is not None and self.result.shape[0] == 0

    def done(self) -> np.ndarray:
        result = self.result if self.result is not None else np.arange(self.count, dtype=np.int64)
        for ex in self.excluded:
            if ex.shape[0] and result.shape[0]:
                result = np.setdiff1d(result, ex, assume_unique=True)
        return result


class LabelIndex:
    """Postings ``name -> value -> [idx, ...]`` for every registered series."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, array[int]]] = {}
        self._order: dict[str, list[str]] = {}  # per name, its values in the order they came (append-only)
        self._count = 0
        self._sorted_values: dict[str, list[str]] = {}  # per name, dropped when a value is added

    def _values_sorted(self, name: str) -> list[str]:
        values = self._sorted_values.get(name)
        if values is None:
            values = self._sorted_values[name] = sorted(self._order.get(name, ()))
        return values

    def add(self, first_idx: int, labels: Iterable[Labels]) -> None:
        """Index series numbered ``first_idx, first_idx + 1, ...`` (numbers must only grow)."""
        i = first_idx
        for ls in labels:
            for name, value in ls:
                by_value = self._postings.get(name)
                if by_value is None:
                    by_value = self._postings[name] = {}
                    self._order[name] = []
                postings = by_value.get(value)
                if postings is None:
                    postings = by_value[value] = array("q")
                    self._order[name].append(value)
                    self._sorted_values.pop(name, None)
                postings.append(i)
            i += 1
        self._count = max(self._count, i)

    def __len__(self) -> int:
        return self._count

    def _union_of(self, name: str, chosen: Iterable[str]) -> np.ndarray:
        """The sorted idx of the series whose ``name`` has one of the ``chosen`` values."""
        values = self._postings.get(name, {})
        lists = [values[v] for v in chosen]
        if not lists:
            return _EMPTY
        if len(lists) == 1:
            return np.array(lists[0], np.int64)  # A copy: the array may grow while it is in use.
        return np.unique(np.concatenate([np.array(p, np.int64) for p in lists]))

    def _match_plain(self, m: Matcher) -> tuple[np.ndarray, bool]:
        """(postings, negate) of an ``=`` or ``!=`` matcher: the series matching it, or with ``negate``
        those *not* matching it. Label values are never ``""`` (an empty value is no label)."""
        if m.value == "":  # name="" (negated) and name!="": the series having the label at all
            return self._union_of(m.name, self._order.get(m.name, ())), m.type is MatchType.EQ
        p = self._postings.get(m.name, {}).get(m.value)
        return (np.array(p, np.int64) if p else _EMPTY), m.type is MatchType.NEQ

    def select(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """Sorted idx of the series matching every matcher (regex scans on this thread)."""
        return self._combine(matchers, {})

    async def select_async(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """As :meth:`select`, with each regex scan over many values run in a worker thread.

        The scans run first; the postings are then combined without yielding, so the answer is the
        index's at one moment (a series added meanwhile is judged by every matcher, or by none).
        """
        scans: dict[int, tuple[_RegexScan, list[str] | None]] = {}
        for i, m in enumerate(matchers):
            if m.type is MatchType.RE or m.type is MatchType.NRE:
                scan = _RegexScan(self, m)
                scans[i] = scan, (await asyncio.to_thread(scan.run) if scan.heavy else scan.run())
        return self._combine(matchers, scans)

    def _combine(self, matchers: Sequence[Matcher], scans: dict[int, tuple[_RegexScan, list[str] | None]]):
        sel = _Selection(self._count)
        for i, m in enumerate(matchers):
            if m.type is MatchType.EQ or m.type is MatchType.NEQ:
                postings, negate = self._match_plain(m)
            else:
                scan, sorted_now = scans.get(i) or self._scan_here(m)
                postings, negate = self._union_of(m.name, scan.finish(self, sorted_now)), scan.negate
            if sel.add(postings, negate):
                break
        return sel.done()

    def _scan_here(self, m: Matcher) -> tuple[_RegexScan, list[str] | None]:
        scan = _RegexScan(self, m)
        return scan, scan.run()

    def label_names(self) -> list[str]:
        return sorted(self._postings)

    def postings_snapshot(self) -> list[tuple[str, list[tuple[str, array[int]]]]]:
        """Every label name with its ``(value, postings)`` pairs, as lists of their own (the postings arrays
        themselves are shared and may grow: copy each at once). For the TSDB status' counting."""
        return [(name, list(by_value.items())) for name, by_value in list(self._postings.items())]

    def label_values(self, name: str) -> list[str]:
        return list(self._values_sorted(name))

