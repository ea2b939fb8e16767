"""The compute gate's fair order of job runs across teams (engine.compute.team_scope). Orders, never timings."""

from __future__ import annotations

import threading

import pytest

from sleuth.engine.compute import INTERACTIVE, JOB, ComputeGate, team_scope

from .test_compute_gate import Holder, queue_waiters


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def hold(gate: ComputeGate, clock: Clock, team: str | None, seconds: float) -> None:
    """``team`` runs on the gate for ``seconds`` of the fake clock (in this thread)."""
    with team_scope(team), gate.slot(JOB):
        clock.t += seconds


def queue_team_waiters(gate: ComputeGate, specs: list[tuple[str, str]], order: list[str]) -> list[threading.Thread]:
    """One job waiter per (name, team), each queued after the previous one."""
    return queue_waiters(gate, [(name, JOB) for name, _ in specs], order, teams=dict(specs))


def test_a_light_teams_run_goes_before_a_busy_teams_runs_queued_earlier() -> None:
    clock = Clock()
    gate = ComputeGate(slots=1, max_starve_s=60, clock=clock)
    hold(gate, clock, "bulk", 20.0)  # the bulk team has used the cores for 20 s
    holder = Holder(gate, JOB, "bulk")  # and holds them now
    order: list[str] = []
    threads = queue_team_waiters(gate, [("bulk1", "bulk"), ("bulk2", "bulk"), ("probe1", "probe")], order)
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["probe1", "bulk1", "bulk2"]  # the probe team's run takes the next slot; bulk keeps its order


def test_the_order_follows_use_not_arrival_nor_team_name() -> None:
    clock = Clock()
    gate = ComputeGate(slots=1, max_starve_s=60, clock=clock)
    hold(gate, clock, "a", 2.0)
    hold(gate, clock, "b", 9.0)
    hold(gate, clock, "c", 5.0)
    holder = Holder(gate, JOB, "x")
    order: list[str] = []
    threads = queue_team_waiters(gate, [("b1", "b"), ("c1", "c"), ("a1", "a"), ("new1", "new")], order)
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["new1", "a1", "c1", "b1"]  # least recent use first; a team never seen has used nothing


def test_use_decays_so_an_old_burst_is_forgotten() -> None:
    clock = Clock()
    gate = ComputeGate(slots=1, max_starve_s=60, clock=clock, team_half_life_s=30.0)
    hold(gate, clock, "bulk", 10.0)
    assert gate.team_usage("bulk") == pytest.approx(10.0)
    clock.t += 30.0
    assert gate.team_usage("bulk") == pytest.approx(5.0)
    clock.t += 60.0
    assert gate.team_usage("bulk") == pytest.approx(1.25)
    hold(gate, clock, "probe", 2.0)  # now the probe team has used more than what is left of bulk's burst
    holder = Holder(gate, JOB, "x")
    order: list[str] = []
    threads = queue_team_waiters(gate, [("probe1", "probe"), ("bulk1", "bulk")], order)
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["bulk1", "probe1"]


def test_sync_runs_are_not_accounted_and_still_go_first() -> None:
    clock = Clock()
    gate = ComputeGate(slots=1, max_starve_s=60, clock=clock)
    with team_scope("wild"), gate.slot(INTERACTIVE):
        clock.t += 50.0
    assert gate.team_usage("wild") == 0.0  # only job runs take part in the fair order
    hold(gate, clock, "bulk", 1.0)
    holder = Holder(gate, JOB, "bulk")
    order: list[str] = []
    threads = queue_team_waiters(gate, [("bulk1", "bulk")], order)
    with gate.slot(INTERACTIVE):  # a sync run does not wait for the fair order
        order.append("sync")
    holder.release()
    for t in threads:
        t.join(10)
    assert order == ["sync", "bulk1"]


def test_runs_without_a_team_count_as_one_team() -> None:
    clock = Clock()
    gate = ComputeGate(slots=1, max_starve_s=60, clock=clock)
    hold(gate, clock, None, 4.0)  # e.g. a micro-batcher's job lane
    assert gate.team_usage(None) == pytest.approx(4.0)
    holder = Holder(gate, JOB, "x")
    order: list[str] = []
    threads = queue_waiters(gate, [("anonymous", JOB)], order)  # queued first, but its "team" used 4 s
    threads += queue_team_waiters(gate, [("someone", "t")], order)
    holder.release()
    for th in threads:
        th.join(10)
    assert order == ["someone", "anonymous"]
