"""glibc's mmap threshold, fixed so large freed blocks go back to the system."""

import ctypes
import platform

from shardmon.model.malloc_tuning import MMAP_THRESHOLD, fix_mmap_threshold

_IS_MMAPPED = 0x2  # glibc: the bit of a chunk's size word saying the chunk is a mapping of its own


def test_large_blocks_are_mappings_of_their_own_once_the_threshold_is_fixed():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert fix_mmap_threshold() in (True, False)
        return
    assert fix_mmap_threshold()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # Without the fix, freeing the first block raises the threshold to its size, so the smaller ones
    # after it come from the heap (and stay in the process when freed); with it, each is mapped on its
    # own, which free() unmaps.
    for size in (8 * MMAP_THRESHOLD, 4 * MMAP_THRESHOLD, 2 * MMAP_THRESHOLD):
        block = libc.malloc(size)
        size_word = ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value
        libc.free(block)
        assert size_word & _IS_MMAPPED
