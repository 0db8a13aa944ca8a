"""The garbage collector's settings: thresholds for the processes that evaluate PromQL (querier, rulers),
and a pause for a shard's recovery.

Such a process holds about a million tracked objects once warm (label sets memoised per series, alerts,
the series each rule wrote last), and every query allocates hundreds of thousands of short-lived ones
(label lists, samples, results). With CPython's default thresholds (700, 10, 10) a young collection runs
every 700 allocations, so an evaluation's temporaries outlive a few of them, are promoted and count
towards the next full collection: measured on the rules bench's data (100k series), two or three full
passes per round of 20 group evaluations, ~0.4 s each, landing in whichever evaluation is running.
Young collections every 50,000 allocations let the temporaries die by reference counting first: no full
pass in three rounds. Cycles are still collected, a little later.

A shard's recovery registers every series of the shard at once (label tuples, postings: about ten
objects per series, none of them in a cycle): with the collector on, each young collection during it
walks the objects made since the last one and the older passes walk them all again, about 40% of the
registration's time at 100k series. :func:`paused` turns the collector off for such a stretch.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Allocations between young collections, and the collections between older ones.
THRESHOLDS = (50_000, 20, 10)


def tune_for_queries() -> None:
    """Set :data:`THRESHOLDS` (raising only: a process that asked for rarer collections keeps them)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(c, t) for c, t in zip(current, THRESHOLDS)))


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No garbage collection inside the block (unless it was off already, it is on again after it)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


__all__ = ["THRESHOLDS", "paused", "tune_for_queries"]
