"""How the process runs one large batch job (``grade``, ``cohort ...``): the C allocator set
before any thread runs.

Grading a large cohort makes and frees arrays of tens to hundreds of megabytes. With glibc's
defaults each is mapped fresh from the kernel and handed back when freed, and every first touch
of a fresh page is a page fault in which the kernel zeroes the page: for 100,000 patients about
390,000 faults and 1-1.6 s of system time (benchmarks/ANALYSIS.md). Three settings keep freed
memory in the process for the next array instead (one arena for all threads, freed memory not
trimmed, a fixed mapping threshold), which cut that to about 290,000 faults and 0.7 s, with a
lower peak. They are process-wide and only take effect reliably before other threads exist, so
the command line applies them at its start, for batch commands only: a long-running server
(``serve``) keeps the defaults and gives memory back. Only glibc has ``mallopt``; elsewhere
(macOS, musl) nothing is changed.

What it buys (issue 16, benchmarks/ANALYSIS.md): 11% of the CPU time of a 100,000-patient
grading (7.58 -> 6.75 s, median of 3 alternating runs; wall time could not be told at load 30).
A batch command also used to end without the interpreter's teardown; with the allocator set that
bought 1% more (6.75 -> 6.69 s: the teardown's frees are cheap once freed memory stays in the
process), under the 10% bar, so it was removed.

``CART_CYTOPENIA_BATCH_TUNING=off`` turns the allocator settings off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# (value, setting) pairs, applied in this order
BATCH_SETTINGS = (
    (M_ARENA_MAX, 1),  # one arena: a thread's freed arrays serve the other thread's next ones
    (M_TRIM_THRESHOLD, 1 << 30),  # keep up to 1 GB of freed memory instead of returning it
    # glibc's largest: arrays above it are still mapped fresh; below it they reuse the heap
    (M_MMAP_THRESHOLD, 32 << 20),
)


def enabled() -> bool:
    return os.environ.get("CART_CYTOPENIA_BATCH_TUNING", "").strip().lower() != "off"


def tune_allocator() -> bool:
    """Apply ``BATCH_SETTINGS`` with glibc's ``mallopt``; True when every setting took effect."""
    if not enabled() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in BATCH_SETTINGS)
