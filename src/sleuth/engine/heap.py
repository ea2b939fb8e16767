"""Give the C heap's free pages back to the operating system now and then (glibc ``malloc_trim``).

The deepfake models run without ONNX Runtime's arena (:func:`sleuth.engine.runtime.use_cpu_arena`): their
activations are ordinary ``malloc`` blocks freed after each run. Blocks above glibc's mmap threshold go straight
back to the OS, but the threshold adapts upwards to the largest block freed, and the many medium blocks of an
analysis (decoded audio windows, image pyramids, numpy temporaries) are freed into the heaps of whichever threads
ran them (glibc keeps one arena per busy thread: job workers, ``Prefer: wait`` request threads, batcher threads).
Those free pages stay in the process's RSS until something trims them, and they are what made a server's RSS
creep up over a long mixed soak (docs/performance.md, memory).

:func:`trim` calls ``malloc_trim(0)`` (every arena, free pages in the middle of a heap included) at most once per
``min_interval_s`` per process; it takes well under a millisecond on a trimmed heap, tens of milliseconds when
hundreds of MB of free pages are handed back. :func:`sleuth.platform.jobs.run_item` calls it after each item, and
the server runs a :class:`Trimmer` thread (every 2 s) for what the sync requests free in the request threads
(decoded images, crops), off their latency path. Setting ``SLEUTH_HEAP_TRIM=false`` turns both off; on a C library
without ``malloc_trim`` (musl, macOS) they do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Trimmer", "configure", "fix_mmap_threshold", "trim"]

_lock = threading.Lock()
_last = float("-inf")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (has ``malloc_trim`` and ``mallopt``); looked up once."""
    try:
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            libc = ctypes.CDLL(None)  # the symbols already loaded into this process
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    return None if libc is None else libc.malloc_trim


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def fix_mmap_threshold(kib: int) -> bool:
    """Serve every block of ``kib`` KiB or more with its own mmap, for good (glibc ``mallopt``); True if set.

    glibc's threshold starts at 128 KiB and rises, up to 32 MiB, to the size of the largest mmapped block freed.
    After the first large analysis, activations, decoded audio and image pyramids of several MiB are then carved
    from the heaps instead, where they fragment them and stay in RSS: the step growth of a long soak. Setting it
    explicitly turns the adjustment off, so large blocks go back to the OS as soon as they are freed. ``kib <= 0``
    leaves glibc's default.
    """
    libc = _libc()
    if kib <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, kib * 1024))


def trim(min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic, enabled: bool | None = None) -> bool:
    """Trim the heap unless it was trimmed less than ``min_interval_s`` ago; True if it ran.

    ``enabled``: the caller's ``heap_trim`` setting (default: the process settings')."""
    global _last
    if enabled is None:
        from sleuth.settings import get_settings

        enabled = get_settings().heap_trim
    if not enabled:
        return False
    f = _malloc_trim()
    if f is None:
        return False
    now = clock()
    with _lock:
        if now - _last < min_interval_s:
            return False
        _last = now
    f(0)
    return True


class Trimmer:
    """A daemon thread that calls :func:`trim` every ``period_s`` seconds until stopped."""

    def __init__(self, period_s: float = 2.0) -> None:
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sleuth-heap-trim", daemon=True)

    def start(self) -> Trimmer:
        self._thread.start()
        return self

    def _run(self) -> None:
        from sleuth.engine.threads import lower_thread_priority

        lower_thread_priority()  # housekeeping: after the sync requests
        while not self._stop.wait(self.period_s):
            trim(min_interval_s=self.period_s / 2, enabled=True)  # started only where heap_trim is on

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def configure(settings: Any) -> Trimmer | None:
    """A long-running process's heap policy: the fixed mmap threshold, and a started :class:`Trimmer` if
    ``heap_trim`` is on (``sleuth serve`` and ``sleuth worker``)."""
    fix_mmap_threshold(settings.heap_mmap_threshold_kb)
    return Trimmer().start() if settings.heap_trim else None
