"""``sort_by_label`` and ``sort_by_label_desc``, Prometheus 2.53's experimental functions, and the natural
order of label values they sort by.

As Prometheus: the series are first sorted by value as ``sort`` (``sort_desc`` for the descending
form) does, then by the values of the given labels in turn, in natural order (``natsort.Compare`` of
github.com/facette/natsort: the values cut into runs of digits and of other characters, two runs of
digits compared as integers, others as strings); series whose given labels are all equal keep their
order by value (Go's ``slices.SortFunc`` is not stable for more than 12 series, so past that the order
of such ties may differ from Prometheus's). The result keeps ``__name__``; like ``sort``, the order
shows only in an instant query. The functions are behind ``querier.enable_experimental_functions``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from shardmon.model.promql.value import InstantVector

_CHUNK = re.compile(r"\d+|\D+")
_MAX_INT64 = (1 << 63) - 1


def _atoi(chunk: str) -> int | None:
    """Go's ``strconv.Atoi`` of a run of digits: None when it overflows int64."""
    if not chunk.isascii() or not chunk.isdigit():
        return None
    value = int(chunk)
    return value if value <= _MAX_INT64 else None


def natural_less(a: str, b: str) -> bool:
    """``natsort.Compare(a, b)``: whether ``a`` comes before ``b`` in natural order."""
    chunks_a, chunks_b = _CHUNK.findall(a), _CHUNK.findall(b)
    for i, ca in enumerate(chunks_a):
        if i >= len(chunks_b):
            return False
        cb = chunks_b[i]
        ia, ib = _atoi(ca), _atoi(cb)
        if ia is not None and ib is not None:
            if ia != ib:
                return ia < ib
        elif ca != cb:
            return ca < cb
        if i == len(chunks_a) - 1:
            return True
        if i == len(chunks_b) - 1:
            return False
    return False


def sort_by_labels(vector: InstantVector, names: Sequence[str], *, descending: bool) -> InstantVector:
    """``vector`` (already in ``sort``/``sort_desc`` order) ordered by the labels ``names``."""
    if vector.values.shape[1] != 1 or vector.order is None:
        return vector  # A range query has no order to show.

    def compare(a: int, b: int) -> int:
        la, lb = vector.labels[a], vector.labels[b]
        for name in names:
            va, vb = la.get(name), lb.get(name)
            if va == vb:
                continue
            before = natural_less(va, vb)
            return (1 if before else -1) if descending else (-1 if before else 1)
        return 0

    order = sorted(vector.order.tolist(), key=functools.cmp_to_key(compare))
    return vector._replace(order=np.array(order, dtype=vector.order.dtype))


__all__ = ["natural_less", "sort_by_labels"]
