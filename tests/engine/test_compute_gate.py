"""The compute gate (engine.compute): who gets the cores next. Asserts orders, never timings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from sleuth.engine import compute
from sleuth.engine.batcher import MicroBatcher
from sleuth.engine.compute import INTERACTIVE, JOB, ComputeGate, priority_scope, team_scope

from .engine_testlib import LinearModel, build_linear_onnx, make_weights, split_weights

WEIGHTS = make_weights(3)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def waiting(gate: ComputeGate) -> int:
    s = gate.stats()
    return int(s["waiting_interactive"] + s["waiting_job"])


class Holder:
    """A thread that holds a slot until told to let go."""

    def __init__(self, gate: ComputeGate, priority: int = JOB, team: str | None = None) -> None:
        self.go, self.inside = threading.Event(), threading.Event()

        def run() -> None:
            with team_scope(team), gate.slot(priority):
                self.inside.set()
                self.go.wait(30)

        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        assert self.inside.wait(10)

    def release(self) -> None:
        self.go.set()
        self.t.join(10)


def queue_waiters(
    gate: ComputeGate,
    specs: list[tuple[str, compute.Priority]],
    order: list[str],
    teams: dict[str, str] | None = None,
) -> list[threading.Thread]:
    """Start one waiter per (name, priority), each queued after the previous one (of ``teams[name]``, if given)."""
    threads = []
    for name, prio in specs:
        before = waiting(gate)
        team = (teams or {}).get(name)

        def run(name: str = name, prio: compute.Priority = prio, team: str | None = team) -> None:
            with team_scope(team), gate.slot(prio):
                order.append(name)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda before=before: waiting(gate) == before + 1)
        threads.append(t)
    return threads


def test_sync_runs_start_at_once_and_jobs_keep_their_order() -> None:
    gate = ComputeGate(slots=1, max_starve_s=60)
    holder = Holder(gate)  # a job run already on the cores
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB), ("job2", JOB)], order)
    for name in ("sync1", "sync2"):
        with gate.slot(INTERACTIVE):  # does not wait for the job run, nor behind the queued ones
            order.append(name)
    assert order == ["sync1", "sync2"]
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["sync1", "sync2", "job1", "job2"]


def test_job_runs_wait_while_a_sync_run_is_on_the_cores() -> None:
    gate = ComputeGate(slots=1, max_starve_s=60)
    sync = Holder(gate, INTERACTIVE)
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB)], order)
    assert order == [] and gate.stats()["waiting_job"] == 1
    sync.release()
    for t in threads:
        t.join(10)
    assert order == ["job1"]


def test_priority_callable_is_read_again_on_nudge() -> None:
    gate = ComputeGate(slots=1, max_starve_s=60)
    holder = Holder(gate)
    level = {"v": JOB}
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB), ("batcher", lambda: level["v"])], order)
    level["v"] = INTERACTIVE  # an interactive item became ready while the batcher waited
    gate.nudge()
    threads[1].join(10)
    assert order == ["batcher"]  # started beside the running job run, before job1
    holder.release()
    threads[0].join(10)
    assert order == ["batcher", "job1"]


def test_reentrant_and_default_priority_from_scope() -> None:
    gate = ComputeGate(slots=1)
    with gate.slot(), gate.slot():  # nested in one thread: no deadlock
        assert gate.stats()["running"] == 1
    assert gate.stats()["running"] == 0
    with priority_scope(INTERACTIVE), gate.slot():
        pass
    with gate.slot():
        pass
    assert gate.grants[-2:] == [INTERACTIVE, JOB]


def test_slots_zero_is_unbounded() -> None:
    gate = ComputeGate(slots=0)
    a, b = Holder(gate), Holder(gate)  # both inside at once
    assert gate.stats()["running"] == 2
    a.release()
    b.release()


# --- the micro-batcher waits for the gate before picking its batch --------------------------------------------


@pytest.fixture
def gate() -> Iterator[ComputeGate]:
    g = ComputeGate(slots=1, max_starve_s=60)
    compute.reset_gate(g)
    yield g
    compute.reset_gate(None)


@pytest.fixture
def model(tmp_path: Path) -> LinearModel:
    (tmp_path / "weights.bin").write_bytes(WEIGHTS)
    w, b = split_weights(WEIGHTS)
    m = LinearModel()
    m.name = "linear"
    m.load({"weights": tmp_path / "weights.bin", "onnx": build_linear_onnx(tmp_path / "m.onnx", w, b)}, None)
    return m


def item(tag: str) -> dict[str, object]:
    return {"tag": tag, "x": np.arange(4, dtype=np.float32).tolist()}


def test_sync_batch_overtakes_queued_job_runs(gate: ComputeGate, model: LinearModel) -> None:
    holder = Holder(gate)  # e.g. a deepfake analysis's run on the cores
    b = MicroBatcher(model, max_batch_size=4, max_wait_ms=0, max_queue=32, preprocess_workers=1)  # type: ignore[arg-type]
    try:
        order: list[str] = []
        jobs = queue_waiters(gate, [("deepfake-job", JOB)], order)
        job_item = b.submit(item("j0"), "job")
        wait_for(lambda: waiting(gate) == 2)  # the batcher waits with a job batch, behind the deepfake run
        sync_item = b.submit(item("s0"), "interactive")
        # promoted by its ready sync item: it runs now, beside the run already on the cores, before the
        # job run queued ahead of it; its batch (picked after the grant) puts the sync item first
        assert sync_item.result(10)["tag"] == "s0"
        assert job_item.result(10)["tag"] == "j0"
        assert model.batches[0] == ["s0", "j0"]
        assert order == []
        holder.release()
        for t in jobs:
            t.join(10)
        assert order == ["deepfake-job"]
    finally:
        b.close(cancel_pending=True, timeout=10)


def test_no_lost_hand_over_when_priorities_and_starvation_change_under_the_waiters() -> None:
    """Priorities that flip at every read and a clock that jumps: every acquire still gets its slot."""
    import itertools

    ticks = itertools.count()
    gate = ComputeGate(slots=1, max_starve_s=2.0, clock=lambda: float(next(ticks)))
    flips = itertools.count()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(40):
                prio: compute.Priority = (lambda: next(flips) % 2) if k % 2 else JOB
                with gate.slot(prio):
                    pass
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert not any(t.is_alive() for t in threads), gate.stats()
    stats = gate.stats()
    stats.pop("team_seconds")
    assert stats == {
        "slots": 1,
        "running": 0,
        "running_interactive": 0,
        "sync_requests": 0,
        "waiting_interactive": 0,
        "waiting_job": 0,
    }


def test_no_job_run_starts_while_a_sync_request_runs() -> None:
    now = {"t": 0.0}
    gate = ComputeGate(slots=1, max_starve_s=2.0, clock=lambda: now["t"])
    order: list[str] = []
    with gate.interactive_request():  # e.g. decoding its images: no model run yet
        threads = queue_waiters(gate, [("job1", JOB)], order)
        assert gate.stats()["running"] == 0 and order == []  # the free slot is kept for the sync request
        with gate.slot(INTERACTIVE):
            order.append("sync-run")
        assert order == ["sync-run"]
    for t in threads:
        t.join(10)
    assert order == ["sync-run", "job1"]  # started once the sync request ended


def test_a_starved_job_run_starts_during_a_long_sync_request() -> None:
    now = {"t": 0.0}
    gate = ComputeGate(slots=1, max_starve_s=2.0, clock=lambda: now["t"])
    order: list[str] = []
    with gate.interactive_request():
        threads = queue_waiters(gate, [("job1", JOB), ("job2", JOB)], order)
        now["t"] = 5.0  # both starved; the waiters' own timed re-checks hand over one slot
        wait_for(lambda: order == ["job1"])
        for t in threads[:1]:
            t.join(10)
        assert order == ["job1"]  # job2 waits for the next window (or the end of the sync request)
    for t in threads:
        t.join(10)
    assert order == ["job1", "job2"]
