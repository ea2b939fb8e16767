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
from sleuth.engine.compute import INTERACTIVE, JOB, ComputeGate, priority_scope

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

    def __init__(self, gate: ComputeGate, priority: int = JOB) -> None:
        self.go, self.inside = threading.Event(), threading.Event()

        def run() -> None:
            with gate.slot(priority):
                self.inside.set()
                self.go.wait(30)

        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        assert self.inside.wait(10)

    def release(self) -> None:
        self.go.set()
        self.t.join(10)


def queue_waiters(
    gate: ComputeGate, specs: list[tuple[str, compute.Priority]], order: list[str]
) -> list[threading.Thread]:
    """Start one waiter per (name, priority), each queued after the previous one."""
    threads = []
    for name, prio in specs:
        before = waiting(gate)

        def run(name: str = name, prio: compute.Priority = prio) -> None:
            with gate.slot(prio):
                order.append(name)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda before=before: waiting(gate) == before + 1)
        threads.append(t)
    return threads


def test_interactive_goes_before_job_runs_queued_earlier() -> None:
    gate = ComputeGate(slots=1, max_starve_s=60)
    holder = Holder(gate)  # a job run already on the cores
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB), ("job2", JOB), ("sync1", INTERACTIVE), ("sync2", INTERACTIVE)], order)
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["sync1", "sync2", "job1", "job2"]  # sync waited only for the run already on the cores


def test_a_starved_job_run_goes_next() -> None:
    gate = ComputeGate(slots=1, max_starve_s=0.0)  # every job waiter counts as starved at once
    holder = Holder(gate)
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB), ("sync1", INTERACTIVE)], order)
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["job1", "sync1"]


def test_priority_callable_is_read_at_hand_over() -> None:
    gate = ComputeGate(slots=1, max_starve_s=60)
    holder = Holder(gate)
    level = {"v": JOB}
    order: list[str] = []
    threads = queue_waiters(gate, [("job1", JOB), ("batcher", lambda: level["v"])], order)
    level["v"] = INTERACTIVE  # an interactive item became ready while the batcher waited
    holder.release()
    for t in threads:
        t.join(10)
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
        wait_for(lambda: waiting(gate) == 2)  # the batcher waits with a job batch
        sync_item = b.submit(item("s0"), "interactive")
        wait_for(lambda: b.stats()["ready"]["interactive"] == 1)
        holder.release()
        assert sync_item.result(10)["tag"] == "s0"
        assert job_item.result(10)["tag"] == "j0"
        for t in jobs:
            t.join(10)
        # the batcher was promoted by its ready sync item: it ran before the job run queued ahead of it,
        # and its batch (picked after the grant) put the sync item first
        assert gate.grants[-2:] == [INTERACTIVE, JOB]
        assert model.batches[0] == ["s0", "j0"]
        assert order == ["deepfake-job"]
    finally:
        b.close(cancel_pending=True, timeout=10)
