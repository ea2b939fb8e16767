"""The compute gate: one process-wide, priority-ordered admission to the cores for every ONNX Runtime run.

ONNX Runtime already spreads one ``session.run`` over all cores (``engine.runtime``), so two runs at the same time
only share the cores, and each holds its own activations in memory. Without a gate every thread that ran a model
(the micro-batchers' inference threads, job workers, ``Prefer: wait`` requests running their deepfake item inline)
ran at once: a sync wildlife request shared the cores with every queued job's model run, and 16 concurrent audio
analyses held 16 sets of activations.

With the gate, a sync run (``INTERACTIVE``: sync API requests, through the micro-batchers' interactive lane) starts
at once, and job runs (``JOB``: job items, deepfake analyses, ``Prefer: wait`` uploads) start ``compute_slots`` at
a time (default 1), the team that used the gate least lately first, and only while no sync work runs: neither a
sync model run nor a sync request between its runs (:meth:`ComputeGate.interactive_request`: its decoding and
cropping get the cores too). So a sync request shares the cores with at most the job runs already on them when it
arrived, and the deepfake models' large activations are held by one run at a time.

One bound on starvation: once a job waiter has waited ``compute_max_starve_s`` (default 1 s), one job run starts
beside sync work, at most once per that window, so jobs still drain under a constant sync load. The run that
starts is the first in the fair order below (not necessarily the one that waited longest): a team that used
the gate the least gets the windows first.

**Fair across teams.** Job waiters are not served first come first served but by their team's recent use of the
gate (:func:`team_scope`, set by :func:`sleuth.platform.jobs.run_item` for the item's team): the team that held
the gate for the fewest seconds, with an exponential decay of ``TEAM_HALF_LIFE_S``, goes first, ties by arrival.
A team running 50-file batches on every worker has used the gate for most of the last minute, so another team's
one-file batch takes the next free slot for each of its runs instead of queueing behind the batch's runs; and as
soon as it has used more than the batch team, the batch team goes first again. Work without a team (the
micro-batchers' job lane, which may mix teams) counts as one team of its own.

A waiter's priority may be a callable, re-read at every hand-over: a micro-batcher waits for the gate before it
picks its batch, with the priority of what it holds (an interactive item arriving meanwhile promotes it: the
batcher calls :meth:`ComputeGate.nudge`).

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
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INTERACTIVE",
    "JOB",
    "ComputeGate",
    "GatedSession",
    "compute_gate",
    "current_priority",
    "current_team",
    "priority_scope",
    "reset_gate",
    "team_scope",
]

INTERACTIVE = 0
JOB = 1
Priority = int | Callable[[], int]
TEAM_HALF_LIFE_S = 30.0  # how fast a team's use of the gate is forgotten (fair order of job waiters)

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("sleuth_compute_priority", default=JOB)
_team: contextvars.ContextVar[str | None] = contextvars.ContextVar("sleuth_compute_team", default=None)


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


def current_team() -> str | None:
    return _team.get()


@contextmanager
def team_scope(team: str | None) -> Iterator[None]:
    """Job runs of the calling thread inside the block are accounted to ``team`` (the gate's fair order)."""
    token = _team.set(team)
    try:
        yield
    finally:
        _team.reset(token)


@dataclass
class _Waiter:
    ticket: int
    priority: Priority
    since: float
    thread: int
    team: str | None = None
    granted: bool = False

    def level(self) -> int:
        p = self.priority
        return int(p() if callable(p) else p)


@dataclass
class _Holder:
    level: int
    team: str | None
    since: float
    depth: int = 1


class ComputeGate:
    """Sync runs at once, job runs ``slots`` at a time when no sync work runs (see the module doc)."""

    def __init__(
        self,
        slots: int = 1,
        max_starve_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        team_half_life_s: float = TEAM_HALF_LIFE_S,
    ) -> None:
        self.slots = max(0, slots)  # job runs at once; 0 = no limit
        self.max_starve_s = max_starve_s
        self.team_half_life_s = team_half_life_s
        self._clock = clock
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiters: list[_Waiter] = []
        self._holders: dict[int, _Holder] = {}  # thread id -> what it runs
        self._usage: dict[str | None, tuple[float, float]] = {}  # team -> (decayed gate seconds, as of when)
        self._requests = 0  # sync requests running (interactive_request)
        self._last_starved = float("-inf")  # when a starved job run last started during sync work
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
        """Wait for the right to run (at once for sync runs, and when this thread already holds one).

        Each acquire needs its release. Rights are handed over, not grabbed: whoever changes the state (a
        release, an arrival, the end of a sync request, :meth:`nudge`, a waiter's timed re-check) runs
        :meth:`_dispatch`, so a priority or a starvation state that changes between two waiters' checks can
        never leave a runnable waiter asleep.
        """
        me = threading.get_ident()
        with self._cond:
            if me in self._holders:
                self._holders[me].depth += 1
                return
            prio = current_priority() if priority is None else priority
            w = _Waiter(next(self._tickets), prio, self._clock(), me, current_team())
            self._waiters.append(w)
            self._dispatch()
            try:
                while not w.granted:
                    self._cond.wait(self._poll_s())
                    if not w.granted:
                        self._dispatch()  # a job may have become starved during a long sync request
            except BaseException:
                if w.granted:
                    self._holders.pop(me, None)
                else:
                    self._waiters.remove(w)
                self._dispatch()
                raise

    def release(self) -> None:
        me = threading.get_ident()
        with self._cond:
            held = self._holders.get(me)
            if held is not None and held.depth > 1:
                held.depth -= 1
                return
            held = self._holders.pop(me, None)
            if held is not None and held.level > INTERACTIVE:
                self._account(held.team, self._clock() - held.since)
            self._dispatch()

    def nudge(self) -> None:
        """Re-evaluate the waiters now (a waiter's priority callable may have changed: an interactive item is ready)."""
        with self._cond:
            self._dispatch()

    @contextmanager
    def interactive_request(self) -> Iterator[None]:
        """Mark a sync request as running: no job run starts (but a starved one, once per ``max_starve_s``)
        until it ends, also while it decodes or crops between its model runs."""
        with self._cond:
            self._requests += 1
        try:
            yield
        finally:
            with self._cond:
                self._requests -= 1
                self._dispatch()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            levels = [w.level() for w in self._waiters]
            return {
                "slots": self.slots,
                "running": len(self._holders),
                "running_interactive": sum(1 for h in self._holders.values() if h.level <= INTERACTIVE),
                "sync_requests": self._requests,
                "waiting_interactive": sum(1 for v in levels if v <= INTERACTIVE),
                "waiting_job": sum(1 for v in levels if v > INTERACTIVE),
                "team_seconds": {str(t): round(self._used(t), 3) for t in self._usage},
            }

    def team_usage(self, team: str | None) -> float:
        """``team``'s decayed seconds of job runs (the fair order's key)."""
        with self._cond:
            return self._used(team)

    # ------------------------------------------------------------------ internals
    def _used(self, team: str | None) -> float:
        value, at = self._usage.get(team, (0.0, 0.0))
        if value <= 0.0 or self.team_half_life_s <= 0:
            return value
        return value * 0.5 ** (max(0.0, self._clock() - at) / self.team_half_life_s)

    def _account(self, team: str | None, seconds: float) -> None:
        now = self._clock()
        self._usage[team] = (self._used(team) + max(0.0, seconds), now)
        if len(self._usage) > 256:  # forget the teams whose use has decayed to nothing
            for t in [t for t in self._usage if self._used(t) < 1e-3]:
                del self._usage[t]

    def _grant(self, w: _Waiter, level: int) -> None:
        self._waiters.remove(w)
        self._holders[w.thread] = _Holder(level, w.team, self._clock())
        w.granted = True
        self.grants.append(level)
        del self.grants[:-1000]

    def _dispatch(self) -> None:
        """Grant what may run now (caller holds the lock)."""
        if not self._waiters:
            return
        granted = False
        levels = {w.ticket: w.level() for w in self._waiters}
        for w in [w for w in self._waiters if levels[w.ticket] <= INTERACTIVE]:  # sync runs never wait
            self._grant(w, levels[w.ticket])
            granted = True
        # job waiters: the team with the least recent use of the gate first, then by arrival
        used: dict[str | None, float] = {}
        for w in self._waiters:
            if w.team not in used:
                used[w.team] = self._used(w.team)
        jobs = sorted(self._waiters, key=lambda w: (used[w.team], w.ticket))
        now = self._clock()
        while jobs and (self.slots == 0 or self._job_running() < self.slots):
            sync_busy = self._requests > 0 or any(h.level <= INTERACTIVE for h in self._holders.values())
            if not sync_busy:
                w = jobs.pop(0)
            elif (
                self.max_starve_s >= 0
                and now - self._last_starved >= self.max_starve_s
                and now - min(j.since for j in jobs) >= self.max_starve_s
            ):
                w = jobs.pop(0)
                self._last_starved = now  # a starved job run starts beside sync work, once per window
            else:
                break
            self._grant(w, levels[w.ticket])
            granted = True
        if granted:
            self._cond.notify_all()

    def _job_running(self) -> int:
        return sum(1 for h in self._holders.values() if h.level > INTERACTIVE)

    def _poll_s(self) -> float | None:
        return max(0.01, self.max_starve_s / 4) if self.max_starve_s >= 0 else None


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
