"""The label index: postings from label pairs to series, answering the four matcher types.

Postings are lists of series idx in increasing order (series are numbered as they arrive), turned
into numpy arrays for set operations. Prometheus's empty-value rule holds: a series without a label
has it with the value ``""``, so a matcher that matches ``""`` also selects series lacking the label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from model.labels import Labels, Matcher, MatchType


class LabelIndex:
    """Postings ``name -> value -> [idx, ...]`` for every registered series."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, list[int]]] = {}
        self._count = 0

    def add(self, first_idx: int, labels: Iterable[Labels]) -> None:
        """Index series numbered ``first_idx, first_idx + 1, ...`` (numbers must only grow)."""
        i = first_idx
        for ls in labels:
            for name, value in ls:
                self._postings.setdefault(name, {}).setdefault(value, []).append(i)
            i += 1
        self._count = max(self._count, i)

    def __len__(self) -> int:
        return self._count

    def _union(self, name: str, pred) -> np.ndarray:
        values = self._postings.get(name, {})
        lists = [p for v, p in values.items() if pred(v)]
        if not lists:
            return np.empty(0, np.int64)
        if len(lists) == 1:
            return np.asarray(lists[0], np.int64)
        return np.unique(np.concatenate([np.asarray(p, np.int64) for p in lists]))

    def _match_one(self, m: Matcher) -> tuple[np.ndarray, bool]:
        """(postings, negate): the series matching ``m``, or with ``negate`` those *not* matching."""
        if m.matches(""):
            # Matches series lacking the label too: compute the complement of the values that fail.
            return self._union(m.name, lambda v: not m.matches(v)), True
        if m.type is MatchType.EQ:
            p = self._postings.get(m.name, {}).get(m.value)
            return (np.asarray(p, np.int64) if p else np.empty(0, np.int64)), False
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
