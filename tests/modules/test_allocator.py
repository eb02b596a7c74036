"""glibc malloc tuning: blocks up to the mmap threshold come from the heap, larger ones are mapped."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from morpheus_pl.allocator import MMAP_THRESHOLD, tune_glibc_malloc

FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33 (no mallinfo2)")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _is_mapped(libc, size: int) -> bool:
    """Whether a fresh `malloc(size)` is served by its own mmap (glibc's mapped-block count)."""
    before = libc.mallinfo2().hblks
    ptr = libc.malloc(size)
    mapped = libc.mallinfo2().hblks == before + 1
    libc.free(ptr)
    return mapped


def test_tuned_thresholds_keep_activation_sized_blocks_on_the_heap():
    libc = _libc()
    block = 16 * 2**20  # a (8, 128, 3072) float32 activation is 12.6 MiB
    try:
        assert tune_glibc_malloc(mmap_threshold=2**20)
        assert _is_mapped(libc, block)
        assert tune_glibc_malloc()
        assert not _is_mapped(libc, block)
        assert _is_mapped(libc, 2 * MMAP_THRESHOLD)
    finally:
        tune_glibc_malloc()
