"""glibc malloc settings for CPU training.

PyTorch on CPU allocates and frees activation buffers of many megabytes every step. With
glibc's defaults each such buffer above the (dynamic) mmap threshold is a fresh `mmap` whose
pages the kernel faults in and zeroes again, and freed heap memory above the trim threshold is
returned at once. Keeping large blocks on the heap avoids both (benchmarks/bench_joint_step.py
measures the effect). No library does this for a running process, hence `mallopt` by hand.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("morpheus_pl")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 2**20   # glibc's maximum on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 2**30        # keep up to 1 GiB of freed heap instead of returning it at once


def tune_glibc_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds for this process; False (and nothing changed)
    where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    if not ok:
        log.warning("glibc mallopt refused mmap threshold %d / trim threshold %d", mmap_threshold,
                    trim_threshold)
    return ok
