"""The C allocator's threshold for large blocks, so a process's memory follows what it holds.

glibc serves a request over its mmap threshold (128 KiB at start) with a mapping of its own, returned to
the system when freed; but each time such a block is freed it raises the threshold to that block's size,
up to 32 MiB. A shard's head arrays (a few MiB to tens of MiB, reallocated as the head grows and merges)
then come from the heap, where freed space stays in the process: measured on 50k series x 60 samples
(bench/memprobe.py's shape), the head held 46 MiB and the process had grown by 94 MiB; with the threshold
fixed at 1 MiB, by 68 MiB. Setting it once turns the sliding off (of the trim threshold too, which stays
at 128 KiB), so a block of 1 MiB or more that the heap has no free room for is mapped on its own and
unmapped when freed, and free space at the heap's top is returned. Smaller blocks (a write's columns)
stay on the heap, where reuse is cheapest. Only glibc has ``mallopt``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

#: Blocks of this size or more are mapped on their own (and returned when freed).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where the C library has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
    return ok


__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold"]
