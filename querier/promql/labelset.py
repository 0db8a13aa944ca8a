"""Building an instant vector whose rows may have been given the same labels.

A function that changes labels (dropping ``__name__``, ``label_replace``...) can leave two rows with
the same label set. Prometheus 2.x evaluates such a function step by step: two samples with the
same labels at one step are an error, while the same labels at different steps are simply one
series. :func:`merge_same_labels` does both over the whole grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import Labels
from shardmon.model.promql.value import InstantVector


def merge_same_labels(labels: Sequence[Labels], values: np.ndarray, present: np.ndarray) -> InstantVector:
    """An instant vector of these rows, rows with equal labels merged into one.

    Raises Prometheus's error if two rows with equal labels both have a value at some step.
    """
    rows_of: dict[Labels, list[int]] = {}
    for row, lbls in enumerate(labels):
        rows_of.setdefault(lbls, []).append(row)
    if len(rows_of) == len(labels):
        return InstantVector(list(labels), values, present)
    out_labels = list(rows_of)
    out_values = np.zeros((len(out_labels), values.shape[1]), dtype=values.dtype)
    out_present = np.zeros((len(out_labels), values.shape[1]), dtype=bool)
    for out_row, rows in enumerate(rows_of.values()):
        if len(rows) == 1:
            out_values[out_row], out_present[out_row] = values[rows[0]], present[rows[0]]
            continue
        group = present[rows]
        if (group.sum(axis=0) > 1).any():
            raise QueryExecutionError("vector cannot contain metrics with the same labelset")
        # At each step, the value of the one row that has one (or of the first, if none has).
        which = np.argmax(group, axis=0)
        out_values[out_row] = values[rows][which, np.arange(values.shape[1])]
        out_present[out_row] = group.any(axis=0)
    return InstantVector(out_labels, out_values, out_present)
