"""Variable-length byte records kept as one ``blob`` and a uint32 array of ``ends`` (record ``i`` is
``blob[ends[i-1]:ends[i]]``): the layout of a batch's series keys (``SeriesTable``) and of its encoded
histograms (``HistogramColumns``). :func:`take_records` gathers some of them with array operations."""

from __future__ import annotations

import numpy as np


def take_records(blob: bytes, ends: np.ndarray, positions: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The records at ``positions`` (an int64 array, in that order, repeats allowed) as a new blob and its
    uint32 ends."""
    ends = ends.astype(np.int64)
    starts = np.concatenate(([0], ends[:-1]))[positions]
    lens = ends[positions] - starts
    new_ends = np.cumsum(lens)
    total = int(new_ends[-1]) if new_ends.shape[0] else 0
    if total:
        offsets = np.repeat(starts - (new_ends - lens), lens) + np.arange(total)
        out = np.frombuffer(blob, np.uint8)[offsets].tobytes()
    else:
        out = b""
    return out, new_ends.astype(np.uint32)
