"""In-process job workers: threads that claim queued items, run them, heartbeat their leases and reap dead workers.

``sleuth serve`` starts one :class:`Worker` (``SLEUTH_WORKERS`` threads) beside the API; ``sleuth worker`` runs one
on its own. Which item a thread takes next is :func:`sleuth.platform.jobs.claim`'s (fair across teams).

Besides its ``threads``, a worker has ``fair_workers`` (default 1) **fair-share threads**. One claims only while
every ordinary thread is running an item, and only items of teams with nothing processing. While team A's 50-file
batch keeps every ordinary thread busy, team B's one-file batch is claimed within a poll instead of after one of
A's items; the compute gate then lets B's runs go before A's queued ones (:mod:`sleuth.engine.compute`), so B
shares the cores with at most one of A's runs. The extra thread costs no memory beyond its stack: model runs are
bounded by the gate, not by the number of threads.

Worker threads run at a lower OS priority (``job_thread_nice``, default +5): the gate orders model runs, and the
nice value gives sync requests the cores first for the rest of an item's work (decoding, pre- and post-processing).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sleuth.engine.compute import compute_gate
from sleuth.engine.threads import lower_thread_priority
from sleuth.platform.jobs import claim, heartbeat, reap, run_item, worker_name

log = logging.getLogger(__name__)


class Worker:
    """In-process worker threads: claim, run, heartbeat; plus a reaper."""

    def __init__(
        self,
        platform: Any,
        threads: int = 2,
        poll_s: float = 0.2,
        kinds: list[str] | None = None,
        fair_threads: int | None = None,
    ) -> None:
        self.platform = platform
        self.threads = max(1, threads)
        fair = getattr(platform.settings, "fair_workers", 1) if fair_threads is None else fair_threads
        self.fair_threads = max(0, int(fair))
        self.poll_s = poll_s
        self.kinds = kinds
        self.id = worker_name()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._inflight: set[str] = set()
        self._busy = 0  # ordinary threads running an item
        self._lock = threading.Lock()
        self._pool: list[threading.Thread] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> Worker:
        for n in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"sleuth-worker-{n}", daemon=True)
            t.start()
            self._pool.append(t)
        for n in range(self.fair_threads):
            t = threading.Thread(target=self._loop, args=(True,), name=f"sleuth-worker-fair-{n}", daemon=True)
            t.start()
            self._pool.append(t)
        hb = threading.Thread(target=self._heartbeat_loop, name="sleuth-heartbeat", daemon=True)
        hb.start()
        self._pool.append(hb)
        return self

    def _loop(self, fair: bool = False) -> None:
        """Claim and run items; a fair-share thread (``fair``) claims only when every ordinary thread is busy,
        and only from teams with nothing processing."""
        db = self.platform.db
        gate = compute_gate()
        lower_thread_priority(getattr(self.platform.settings, "job_thread_nice", None))  # sync requests first
        while not self._stop.is_set():
            ids: list[str] = []
            if not fair or self._busy >= self.threads:
                try:
                    ids = claim(db, self.id, 1, kinds=self.kinds, idle_teams_only=fair, usage=gate.team_usage)
                except Exception:
                    log.exception("claim failed")
            if not ids and fair and self._busy < self.threads:
                self._stop.wait(self.poll_s)  # not its turn: leave the wake-ups to the ordinary threads
                continue
            if not ids:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            for item_id in ids:
                with self._lock:
                    self._inflight.add(item_id)
                    self._busy += not fair
                try:
                    run_item(self.platform, item_id, self.id)
                finally:
                    with self._lock:
                        self._inflight.discard(item_id)
                        self._busy -= not fair

    def _heartbeat_loop(self) -> None:
        db = self.platform.db
        period = db.settings.job_heartbeat_s
        while not self._stop.wait(period):
            try:
                with self._lock:
                    ids = list(self._inflight)
                heartbeat(db, self.id, ids)
                reap(db)
            except Exception:
                log.exception("heartbeat/reap failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._pool:
            t.join(timeout)


def drain(platform: Any, worker_id: str | None = None, max_items: int = 10_000) -> int:
    """Run queued items in the calling thread until none is left (tests, CLI one-shot)."""
    wid = worker_id or worker_name()
    n = 0
    while n < max_items:
        ids = claim(platform.db, wid, 1)
        if not ids:
            return n
        run_item(platform, ids[0], wid)
        n += 1
    return n
