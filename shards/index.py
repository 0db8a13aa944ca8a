"""The label index: postings from label pairs to series, answering the four matcher types.

Postings are lists of series idx in increasing order (series are numbered as they arrive), turned
into numpy arrays for set operations. Prometheus's empty-value rule holds: a series without a label
has it with the value ``""``, so a matcher that matches ``""`` also selects series lacking the label.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import numpy as np

from model.labels import Labels, Matcher, MatchType, regex_shape


class LabelIndex:
    """Postings ``name -> value -> [idx, ...]`` for every registered series."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, list[int]]] = {}
        self._count = 0
        self._sorted_values: dict[str, list[str]] = {}  # per name, rebuilt when a value is added

    def _values_sorted(self, name: str) -> list[str]:
        values = self._sorted_values.get(name)
        if values is None:
            values = self._sorted_values[name] = sorted(self._postings.get(name, {}))
        return values

    def _regex_hits(self, m: Matcher) -> list[str]:
        """The values of ``m.name`` that ``m``'s regex matches, without trying every value when the
        regex is a set of literals (looked up directly) or has a literal prefix (a sorted range)."""
        values = self._postings.get(m.name, {})
        alternatives, prefix = regex_shape(m.value)
        if alternatives is not None:
            return [v for v in alternatives if v in values]
        if prefix:
            ordered = self._values_sorted(m.name)
            lo = bisect.bisect_left(ordered, prefix)
            hi = bisect.bisect_left(ordered, prefix + "\U0010ffff")
            candidates: Iterable[str] = ordered[lo:hi]
        else:
            candidates = values
        hit = Matcher(MatchType.RE, m.name, m.value)
        return [v for v in candidates if hit.matches(v)]

    def add(self, first_idx: int, labels: Iterable[Labels]) -> None:
        """Index series numbered ``first_idx, first_idx + 1, ...`` (numbers must only grow)."""
        i = first_idx
        for ls in labels:
            for name, value in ls:
                by_value = self._postings.setdefault(name, {})
                postings = by_value.get(value)
                if postings is None:
                    postings = by_value[value] = []
                    self._sorted_values.pop(name, None)
                postings.append(i)
            i += 1
        self._count = max(self._count, i)

    def __len__(self) -> int:
        return self._count

    def _union(self, name: str, pred) -> np.ndarray:
        values = self._postings.get(name, {})
        return self._union_of(values, [v for v in values if pred(v)])

    @staticmethod
    def _union_of(values: dict[str, list[int]], chosen: Iterable[str]) -> np.ndarray:
        lists = [values[v] for v in chosen]
        if not lists:
            return np.empty(0, np.int64)
        if len(lists) == 1:
            return np.asarray(lists[0], np.int64)
        return np.unique(np.concatenate([np.asarray(p, np.int64) for p in lists]))

    def _match_one(self, m: Matcher) -> tuple[np.ndarray, bool]:
        """(postings, negate): the series matching ``m``, or with ``negate`` those *not* matching."""
        values = self._postings.get(m.name, {})
        if m.type is MatchType.NRE and m.matches(""):
            # Every series but those whose value the regex hits (series lacking the label included).
            return self._union_of(values, self._regex_hits(m)), True
        if m.matches(""):
            # Matches series lacking the label too: compute the complement of the values that fail.
            return self._union(m.name, lambda v: not m.matches(v)), True
        if m.type is MatchType.EQ:
            p = values.get(m.value)
            return (np.asarray(p, np.int64) if p else np.empty(0, np.int64)), False
        if m.type is MatchType.RE:
            return self._union_of(values, self._regex_hits(m)), False
        return self._union(m.name, m.matches), False

    def select(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """Sorted idx of the series matching every matcher."""
        result: np.ndarray | None = None
        excluded: list[np.ndarray] = []
        for m in matchers:
            postings, negate = self._match_one(m)
            if negate:
                excluded.append(postings)
            elif result is None:
                result = postings
            else:
                result = np.intersect1d(result, postings, assume_unique=True)
            if result is not None and result.shape[0] == 0:
                return result
        if result is None:
            result = np.arange(self._count, dtype=np.int64)
        for ex in excluded:
            if ex.shape[0]:
                result = np.setdiff1d(result, ex, assume_unique=True)
        return result

    def label_names(self) -> list[str]:
        return sorted(self._postings)

    def label_values(self, name: str) -> list[str]:
        return sorted(self._postings.get(name, {}))
