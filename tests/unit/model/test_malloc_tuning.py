"""glibc's mmap threshold, fixed so large freed blocks go back to the system."""

import ctypes
import platform

from shardmon.model.malloc_tuning import MMAP_THRESHOLD, fix_mmap_threshold


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_a_freed_large_block_leaves_the_process_once_the_threshold_is_fixed():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert fix_mmap_threshold() in (True, False)
        return
    assert fix_mmap_threshold()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # Without the fix, freeing the first block raises the threshold to its size, so the smaller ones
    # after it come from the heap and stay in the process when freed.
    for size in (8 * MMAP_THRESHOLD, 4 * MMAP_THRESHOLD, 2 * MMAP_THRESHOLD):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        before = _rss_kib()
        libc.free(block)
        assert _rss_kib() < before - size // 1024 // 2
