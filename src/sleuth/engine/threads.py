"""OS thread priority for job work, without letting it leak into threads that sync requests share.

:func:`lower_thread_priority` nices the calling thread (Linux: a per-thread nice value; raising it needs no
privilege). The threads that run job items (workers, inline ``Prefer: wait`` runs) call it: the compute gate orders
model runs, and the nice value gives sync requests the cores first for the rest of an item's work (decoding,
pre- and post-processing, database writes).

A new thread takes the nice value of the thread that creates it, and a process without privilege cannot lower it
again. Models, their ORT intra-op threads, micro-batchers and their thread pools are created lazily, in whichever
thread first needs them, and shared by sync requests and jobs. So what creates shared threads goes through
:func:`at_normal_priority`: from a niced thread it runs in a fresh thread at the process's normal priority (made by
a spawner thread started at import), elsewhere in the caller. :func:`eager_pool` starts all of a pool's threads at
once, in the creating thread, so none is spawned later by a niced submitter.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["at_normal_priority", "eager_pool", "is_niced", "lower_thread_priority"]

T = TypeVar("T")
_tls = threading.local()


def is_niced() -> bool:
    """True in a thread that :func:`lower_thread_priority` niced."""
    return bool(getattr(_tls, "niced", False))


def lower_thread_priority(nice: int | None = None) -> int:
    """Make the calling OS thread ``nice`` steps less favoured by the scheduler (Linux only; a no-op elsewhere).

    With no sync work the job threads get the cores all the same. The thread keeps the value for good, so only
    dedicated threads call this. ``nice`` defaults to the ``job_thread_nice`` setting (5; 0 = leave it). Returns
    the thread's nice value afterwards.
    """
    if nice is None:
        from sleuth.settings import get_settings

        nice = get_settings().job_thread_nice
    if sys.platform != "linux":
        return 0
    tid = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, tid)
    if nice > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
        except OSError:  # pragma: no cover - a sandbox may refuse it; the gate still orders the model runs
            return current
        _tls.niced = True
    return os.getpriority(os.PRIO_PROCESS, tid)


class _Spawner:
    """A thread at the importing thread's priority that starts a fresh thread per call (it never runs the call
    itself, so a call that needs another call cannot deadlock behind it)."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="sleuth-spawner", daemon=True).start()

    def _run(self) -> None:
        while True:
            fn, fut = self._q.get()
            threading.Thread(target=self._call, args=(fn, fut), name="sleuth-normal-priority", daemon=True).start()

    @staticmethod
    def _call(fn: Callable[[], Any], fut: Future[Any]) -> None:
        try:
            fut.set_result(fn())
        except BaseException as e:  # handed to the caller
            fut.set_exception(e)

    def call(self, fn: Callable[[], T]) -> T:
        fut: Future[T] = Future()
        self._q.put((fn, fut))
        return fut.result()


_spawner = _Spawner()


def at_normal_priority(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, in a thread at normal priority if the caller is niced (see the module doc)."""
    if not is_niced():
        return fn(*args, **kwargs)
    return _spawner.call(lambda: fn(*args, **kwargs))


def eager_pool(workers: int, thread_name_prefix: str = "") -> ThreadPoolExecutor:
    """A ``ThreadPoolExecutor`` whose ``workers`` threads are all started now (at the caller's priority)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
    if workers > 0:
        barrier = threading.Barrier(workers + 1)
        for _ in range(workers):  # each task holds its thread until all are up: one new thread per task
            pool.submit(barrier.wait, 30)
        barrier.wait(30)
    return pool
