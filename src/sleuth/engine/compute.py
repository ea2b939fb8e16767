"""The compute gate: one process-wide, priority-ordered admission to the cores for every ONNX Runtime run.

ONNX Runtime already spreads one ``session.run`` over all cores (``engine.runtime``), so two runs at the same time
only share the cores, and each holds its own activations in memory. Without a gate every thread that ran a model
(the micro-batchers' inference threads, job workers, ``Prefer: wait`` requests running their deepfake item inline)
ran at once: a sync wildlife request shared the cores with every queued job's model run, and 16 concurrent audio
analyses held 16 sets of activations.

With the gate, at most ``compute_slots`` runs (default 1) are on the cores. When a slot frees, the waiter with the
best priority gets it: ``INTERACTIVE`` (sync API requests, via the micro-batchers' interactive lane) before ``JOB``
(job items, deepfake analyses, ``Prefer: wait`` uploads), first come first served within a priority. So a sync
request waits behind at most the runs already on the cores. One bound on starvation: a job waiter that has waited
``max_starve_s`` (default 2 s) goes next, so jobs still drain under a constant sync load (a sync request then waits
behind at most one such run).

A waiter's priority may be a callable, re-read at every hand-over: a micro-batcher waits for the gate before it
picks its batch, with the priority of what it holds (an interactive item arriving meanwhile promotes it).

Which priority a thread's plain ``session.run`` uses comes from :func:`priority_scope` (a context variable; the
default is ``JOB``). The gate is re-entrant per thread: a run inside a held slot passes through.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INTERACTIVE",
    "JOB",
    "ComputeGate",
    "GatedSession",
    "compute_gate",
    "current_priority",
    "priority_scope",
    "reset_gate",
]

INTERACTIVE = 0
JOB = 1
Priority = int | Callable[[], int]

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("sleuth_compute_priority", default=JOB)


def current_priority() -> int:
    return _priority.get()


@contextmanager
def priority_scope(priority: int) -> Iterator[None]:
    """Runs of the calling thread inside the block use ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


@dataclass
class _Waiter:
    ticket: int
    priority: Priority
    since: float = field(default_factory=time.monotonic)

    def level(self) -> int:
        p = self.priority
        return int(p() if callable(p) else p)


class ComputeGate:
    """``slots`` concurrent holders at most; free slots go to the best-priority waiter (see the module doc)."""

    def __init__(self, slots: int = 1, max_starve_s: float = 2.0) -> None:
        self.slots = max(0, slots)  # 0 = no limit (the gate only orders nothing)
        self.max_starve_s = max_starve_s
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiters: list[_Waiter] = []
        self._holders: dict[int, int] = {}  # thread id -> depth
        self.grants: list[int] = []  # priority of each grant, newest last (bounded; tests and stats)

    # ------------------------------------------------------------------ public
    @contextmanager
    def slot(self, priority: Priority | None = None) -> Iterator[None]:
        self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    def acquire(self, priority: Priority | None = None) -> None:
        """Wait for a slot (at once when this thread already holds one; each acquire needs its release)."""
        me = threading.get_ident()
        with self._cond:
            if me in self._holders:
                self._holders[me] += 1
                return
            w = _Waiter(next(self._tickets), current_priority() if priority is None else priority)
            self._waiters.append(w)
            try:
                while not ((self.slots == 0 or len(self._holders) < self.slots) and self._next() is w):
                    self._cond.wait()
            except BaseException:
                self._waiters.remove(w)
                self._cond.notify_all()
                raise
            self._waiters.remove(w)
            self._holders[me] = 1
            self.grants.append(w.level())
            del self.grants[:-1000]

    def release(self) -> None:
        me = threading.get_ident()
        with self._cond:
            depth = self._holders.get(me, 0)
            if depth > 1:
                self._holders[me] = depth - 1
                return
            self._holders.pop(me, None)
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            levels = [w.level() for w in self._waiters]
            return {
                "slots": self.slots,
                "running": len(self._holders),
                "waiting_interactive": sum(1 for v in levels if v <= INTERACTIVE),
                "waiting_job": sum(1 for v in levels if v > INTERACTIVE),
            }

    # ------------------------------------------------------------------ internals
    def _next(self) -> _Waiter | None:
        """Who gets the next free slot (caller holds the lock)."""
        if not self._waiters:
            return None
        now = time.monotonic()
        ranked = sorted(self._waiters, key=lambda w: (w.level(), w.ticket))
        best = ranked[0]
        if best.level() <= INTERACTIVE and self.max_starve_s >= 0:
            starved = [w for w in ranked if w.level() > INTERACTIVE and now - w.since >= self.max_starve_s]
            if starved:
                return min(starved, key=lambda w: w.ticket)
        return best


class GatedSession:
    """An ``ort.InferenceSession`` whose ``run`` goes through the compute gate; everything else is the session's."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def run(self, *args: Any, **kwargs: Any) -> Any:
        with compute_gate().slot():
            return self._session.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


_gate: ComputeGate | None = None
_gate_lock = threading.Lock()


def compute_gate() -> ComputeGate:
    """The process-wide gate (``compute_slots`` and ``compute_max_starve_s`` from the settings)."""
    global _gate
    g = _gate
    if g is not None:
        return g
    with _gate_lock:
        if _gate is None:
            from sleuth.settings import get_settings

            s = get_settings()
            _gate = ComputeGate(s.compute_slots, s.compute_max_starve_s)
        return _gate


def reset_gate(gate: ComputeGate | None = None) -> None:
    """Replace the process-wide gate (tests; settings changes)."""
    global _gate
    with _gate_lock:
        _gate = gate
