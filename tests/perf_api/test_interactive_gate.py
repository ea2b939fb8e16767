"""Job items yield to running sync requests (services.wildlife.InteractiveGate); no models needed."""

from __future__ import annotations

import threading

from sleuth.services.wildlife import InteractiveGate


def test_idle_gate_does_not_wait():
    gate = InteractiveGate(grace_s=5.0, max_wait_s=5.0)
    assert gate.yield_to_interactive() < 1.0  # no sync request ever ran


def test_job_waits_for_the_running_sync_request_then_the_grace():
    gate = InteractiveGate(grace_s=0.05, max_wait_s=30.0)
    inside, release, returned = threading.Event(), threading.Event(), threading.Event()
    state = {}

    def sync_request():
        with gate.interactive():
            inside.set()
            release.wait(30)

    def job_item():
        gate.yield_to_interactive()
        state["active_when_returned"] = gate.active
        returned.set()

    s = threading.Thread(target=sync_request)
    s.start()
    assert inside.wait(10)
    j = threading.Thread(target=job_item)
    j.start()
    assert not returned.wait(0.3)  # still blocked: the sync request is running
    assert gate.active == 1
    release.set()
    s.join(10)
    assert returned.wait(10)  # released once the sync request ended (+ grace)
    j.join(10)
    assert state["active_when_returned"] == 0


def test_wait_is_bounded_under_constant_sync_load():
    gate = InteractiveGate(grace_s=0.05, max_wait_s=0.2)
    release = threading.Event()
    inside = threading.Event()

    def sync_request():
        with gate.interactive():
            inside.set()
            release.wait(30)

    s = threading.Thread(target=sync_request)
    s.start()
    try:
        assert inside.wait(10)
        waited = gate.yield_to_interactive()
        assert 0.2 <= waited < 10  # gave up after max_wait_s although the sync request still runs
        assert gate.active == 1
    finally:
        release.set()
        s.join(10)
    assert gate.active == 0


def test_interactive_count_survives_exceptions():
    gate = InteractiveGate()
    try:
        with gate.interactive():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gate.active == 0
