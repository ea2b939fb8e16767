"""Threads that run job items are niced (engine.compute.lower_thread_priority): sync requests get the cores first."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from sleuth.engine.compute import lower_thread_priority

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
