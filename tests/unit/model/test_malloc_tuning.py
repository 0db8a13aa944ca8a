"""glibc's mmap threshold, fixed so large freed blocks go back to the system."""

import platform
import subprocess
import sys

import pytest

from shardmon.model.malloc_tuning import fix_mmap_threshold

# In a fresh process (whose heap has no free space yet to serve a large block from): allocate and free
# blocks of 8, 4 and 2 MiB and print whether each was a mapping of its own (glibc's IS_MMAPPED bit of the
# chunk's size word). Without the fix, freeing the first raises the threshold to 8 MiB, so the smaller
# ones come from the heap and stay in the process when freed.
_PROBE = """
import ctypes, sys
from shardmon.model.malloc_tuning import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
out = []
for mib in (8, 4, 2):
    block = libc.malloc(mib << 20)
    out.append(ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value & 2 == 2)
    libc.free(block)
print(out)
"""


def _mapped(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout.strip()


def test_large_blocks_are_mappings_of_their_own_once_the_threshold_is_fixed():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert fix_mmap_threshold() in (True, False)
        pytest.skip("mallopt is glibc's")
    assert _mapped("fixed") == "[True, True, True]"
    assert _mapped("default") == "[True, False, False]"
