"""Keep freed memory for reuse in a data-path daemon (glibc's malloc).

Every write through the replica allocates its payload: a 1 MiB WRITE from an NBD client is
joined from the pieces of several socket reads, and the Secondary joins a frame the same way.
glibc serves such blocks by mmap or from the top of its heap, and gives them back to the kernel
(munmap, heap trimming) when they are freed. The next block then comes from the kernel again:
256 page faults per MiB, which on a virtual machine cost more than copying the MiB. Measured
(docs/benchmarks.md): 1 MiB writes under protocol C went from about 370 to 510 MiB/s with the
settings below; 4 KiB writes are not affected.

So the daemon asks glibc to serve blocks up to the largest threshold it accepts from its heap
and to keep up to TRIM_THRESHOLD of freed memory there. What it keeps is what the daemon had in
use at its peak (bounded by the NBD server's in-flight limit and the peer's buffers).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Apply the settings; False where the C library has no mallopt (musl, say) or refuses
    one of them (the daemon works either way, only slower with large writes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.debug("no mallopt in this C library: freed memory goes back to the kernel")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, since setting either one turns
    # off glibc's own adjustment of both.
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        log.debug("mallopt refused M_MMAP_THRESHOLD %d", MMAP_THRESHOLD)
        return False
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        log.debug("mallopt refused M_TRIM_THRESHOLD %d", TRIM_THRESHOLD)
        return False
    return True
