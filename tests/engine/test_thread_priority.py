"""Threads that run job items are niced (engine.compute.lower_thread_priority): sync requests get the cores first."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from sleuth.engine.threads import lower_thread_priority

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def in_new_thread(fn):  # type: ignore[no-untyped-def]
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out[0]


def test_only_the_calling_thread_is_niced() -> None:
    base = nice_of_this_thread()
    after = in_new_thread(lambda: (lower_thread_priority(5), nice_of_this_thread())[1])
    assert after == min(19, base + 5)
    assert nice_of_this_thread() == base  # the caller of the test, and the process, keep theirs
    assert in_new_thread(lambda: lower_thread_priority(0)) == base  # 0 leaves it


def test_worker_and_inline_threads_run_items_niced(settings, db) -> None:  # type: ignore[no-untyped-def]
    from sleuth.api.deepfake import _inline_pool
    from sleuth.platform import jobs
    from sleuth.platform.auth import create_team
    from sleuth.platform.context import Platform
    from sleuth.platform.worker import Worker

    base = nice_of_this_thread()
    seen: list[int] = []
    done = threading.Event()

    def handler(platform, item, job):  # type: ignore[no-untyped-def]
        seen.append(nice_of_this_thread())
        done.set()
        return {}

    jobs.register_kind("nice-kind", handler)
    platform = Platform.create(settings)
    w = Worker(platform, threads=1, poll_s=0.05, fair_threads=0, kinds=["nice-kind"]).start()
    try:
        jobs.create_job(db, create_team(db, "n").id, "nice-kind", [jobs.ItemSpec(filename="x")])
        w.wake()
        assert done.wait(20)
    finally:
        w.stop()
    assert seen == [min(19, base + settings.job_thread_nice)]
    assert _inline_pool(platform).submit(nice_of_this_thread).result(10) == min(19, base + settings.job_thread_nice)


def task_nices() -> dict[int, int]:
    """nice value of every OS thread of this process (field 19 of /proc/self/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        out[int(tid)] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def niced(fn):  # type: ignore[no-untyped-def]
    """fn() in a new thread niced by 5."""
    return in_new_thread(lambda: (lower_thread_priority(5), fn())[1])


def test_at_normal_priority_runs_a_niced_callers_work_at_the_normal_priority() -> None:
    from sleuth.engine.threads import at_normal_priority, is_niced

    base = nice_of_this_thread()
    assert niced(lambda: (is_niced(), nice_of_this_thread())) == (True, min(19, base + 5))
    assert niced(lambda: at_normal_priority(nice_of_this_thread)) == base
    assert niced(lambda: at_normal_priority(lambda a, b=0: a + b, 2, b=3)) == 5

    def boom() -> None:
        raise KeyError("x")

    def call() -> str:
        try:
            at_normal_priority(boom)
        except KeyError:
            return "raised"
        return "no"

    assert niced(call) == "raised"  # the callee's exception reaches the caller
    assert at_normal_priority(threading.get_ident) == threading.get_ident()  # not niced: in the caller


def test_shared_threads_made_from_a_niced_thread_are_not_niced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ORT intra-op threads and pool threads a niced job thread creates on first use serve sync requests too."""
    from sleuth.engine.runtime import create_session
    from sleuth.engine.threads import at_normal_priority, eager_pool

    from .engine_testlib import build_linear_onnx, make_weights, split_weights

    base = nice_of_this_thread()
    w, b = split_weights(make_weights(3))
    path = build_linear_onnx(tmp_path / "m.onnx", w, b)
    before = set(task_nices())
    sessions = [niced(lambda: create_session(path, None, intra_op_threads=2))]
    pool = niced(lambda: at_normal_priority(eager_pool, 3, "t"))
    assert len(pool._threads) == 3  # all started at once, none later by a submitter
    new = {tid: n for tid, n in task_nices().items() if tid not in before}
    assert len(new) >= 4, new  # at least ORT's extra intra-op thread and the 3 pool threads
    assert set(new.values()) == {base}, new
    pool.shutdown()
    del sessions
