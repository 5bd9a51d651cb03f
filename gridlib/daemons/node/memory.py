"""Heap tuning for the processes that move payloads: the node daemon and its workers.

glibc serves every allocation over 128 KiB with a fresh ``mmap`` and gives it
back with ``munmap`` on free, and trims the heap as soon as its top is free.
A process that unpickles or forwards a 1 MiB payload per job then pays for 256
page faults and 1 MiB of zeroing on every job -- on a 1 MiB echo that was
the largest cost in a worker.  Large blocks are kept in the heap instead and
reused from one job to the next; a process holds at most ``TRIM`` bytes of
freed memory.  A no-op where ``mallopt`` does not exist (not glibc).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["retain_large_buffers"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit
TRIM = 64 << 20


def retain_large_buffers() -> bool:
    """Keep freed blocks up to 32 MiB for reuse; returns whether the setting took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
