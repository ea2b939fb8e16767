"""engine.heap.trim: glibc's malloc_trim, at most once per interval, off by setting."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sleuth.engine import heap

glibc = pytest.mark.skipif(heap._malloc_trim() is None, reason="needs a C library with malloc_trim (glibc)")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


@glibc
def test_trim_gives_freed_pages_back_and_is_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_last", float("-inf"))

    def churn(keep: list[object]) -> None:  # medium blocks freed in a thread's own malloc arena
        blocks = [np.ones(n, dtype=np.float32) for n in range(2_000, 30_000, 40)]  # ~45 MB per thread
        keep.append(blocks[::50])  # a few survivors pin the heap's top, so free() alone cannot shrink it
        del blocks

    keep: list[object] = []
    threads = [threading.Thread(target=churn, args=(keep,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = rss_mb()
    now = [1e12]  # later than any real clock: another thread's trim in between cannot make ours "too soon"
    assert heap.trim(min_interval_s=5.0, clock=lambda: now[0]) is True
    after = rss_mb()
    assert after < before - 20, (before, after)  # tens of MB of free pages went back to the OS (~150 here)
    now[0] += 1.0
    assert heap.trim(min_interval_s=5.0, clock=lambda: now[0]) is False  # not again within the interval
    now[0] += 5.0
    assert heap.trim(min_interval_s=5.0, clock=lambda: now[0]) is True


def test_trim_is_off_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.settings import get_settings

    monkeypatch.setenv("SLEUTH_HEAP_TRIM", "false")
    get_settings.cache_clear()
    try:
        monkeypatch.setattr(heap, "_last", float("-inf"))
        assert heap.trim(min_interval_s=0.0) is False
    finally:
        monkeypatch.delenv("SLEUTH_HEAP_TRIM")
        get_settings.cache_clear()


def test_the_trimmer_thread_trims_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    calls: list[float] = []
    monkeypatch.setattr(heap, "trim", lambda min_interval_s=1.0, **kw: calls.append(min_interval_s) or True)
    t = heap.Trimmer(period_s=0.02).start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t.stop()
    assert len(calls) >= 3 and not t._thread.is_alive()
    n = len(calls)
    time.sleep(0.1)
    assert len(calls) == n  # stopped for good


def test_the_server_runs_a_trimmer_and_stops_it(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    app = create_app(settings)
    with TestClient(app):
        trimmer = app.state.platform.extras["trimmer"]
        assert trimmer._thread.is_alive()
    assert not trimmer._thread.is_alive() and "trimmer" not in app.state.platform.extras


@glibc
def test_a_fixed_mmap_threshold_gives_large_freed_blocks_back_at_once() -> None:
    import subprocess
    import sys

    # in a child process: mallopt changes the allocator of the whole process for good
    code = """
import sys
import numpy as np
from sleuth.engine import heap
assert heap.fix_mmap_threshold(int(sys.argv[1])) is (sys.argv[1] != "0")
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
big = np.ones(2_000_000); del big  # a 16 MB mmapped block freed: glibc's own threshold rises to 16 MB
blocks = [np.ones(125_000) for _ in range(16)]  # 16 x 1 MB
up = rss()
del blocks
print(round(up - rss()))
"""
    released = {}
    for kib in ("0", "256"):
        out = subprocess.run([sys.executable, "-c", code, kib], capture_output=True, text=True, check=True)
        released[kib] = int(out.stdout.split()[-1])
    assert released["256"] >= 14, released  # each 1 MB block was its own mmap: back to the OS when freed
    assert released["0"] < 8, released  # glibc's raised threshold carved them from the heap, where they stay


def test_no_threshold_is_set_for_zero() -> None:
    assert heap.fix_mmap_threshold(0) is False
