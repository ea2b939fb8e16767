from __future__ import annotations

import threading

import pytest


@pytest.fixture
def billing_db(settings):
    from sleuth.db.engine import Database

    return Database(settings.model_copy(update={"billing_enabled": True}))


@pytest.fixture
def team(billing_db):
    from sleuth.platform.auth import create_team

    return create_team(billing_db, "wallet-team").id


def test_reserve_capture_refund_ledger(billing_db, team):
    from sleuth.platform import credits

    credits.grant(billing_db, team, 10)
    r = credits.reserve(billing_db, team, 6, "batch")
    assert credits.balance(billing_db, team).available == 4
    assert credits.capture(billing_db, r, 4)
    assert not credits.capture(billing_db, r, 3)  # only 2 left: never over-captures
    assert credits.refund(billing_db, r) == 2
    assert credits.refund(billing_db, r) == 0  # idempotent
    b = credits.balance(billing_db, team)
    assert (b.available, b.granted_total, b.captured_total, b.reserved_open) == (6, 10, 4, 0)
    assert credits.ledger_sum(billing_db, team) == b.available


def test_insufficient_credits_402_with_breakdown(billing_db, team):
    from sleuth.platform import credits

    credits.grant(billing_db, team, 2)
    with pytest.raises(credits.InsufficientCredits) as ei:
        credits.reserve(billing_db, team, 3, "x", breakdown=[{"file": "a", "cost": 3}])
    assert ei.value.status == 402
    assert ei.value.details["cost_breakdown"] == [{"file": "a", "cost": 3}]
    assert credits.balance(billing_db, team).available == 2


def test_unlimited_mode_when_billing_disabled(db):
    from sleuth.platform import credits
    from sleuth.platform.auth import create_team

    t = create_team(db, "free").id
    r = credits.reserve(db, t, 1000, "x")
    assert r == credits.UNLIMITED
    assert credits.capture(db, r, 1000) and credits.refund(db, r) == 0
    assert credits.balance(db, t).available == 0


@pytest.mark.parametrize("n_credits, n_requests, each", [(17, 60, 1), (20, 50, 3)])
def test_concurrent_reservations_never_overdraw(billing_db, team, n_credits, n_requests, each):
    from sleuth.platform import credits

    credits.grant(billing_db, team, n_credits)
    barrier = threading.Barrier(n_requests)
    ok: list[str] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            rid = credits.reserve(billing_db, team, each, "race")
            with lock:
                ok.append(rid)
        except credits.InsufficientCredits:
            with lock:
                refused.append(1)
        except BaseException as e:  # any other failure is a bug
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n_requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    expected = n_credits // each
    assert len(ok) == expected and len(refused) == n_requests - expected
    b = credits.balance(billing_db, team)
    assert b.available == n_credits - expected * each >= 0
    assert credits.ledger_sum(billing_db, team) == b.available
    from sqlalchemy import select

    from sleuth.db.models import LedgerEntry

    with billing_db.session() as s:
        deltas = list(s.scalars(select(LedgerEntry.delta).where(LedgerEntry.team_id == team).order_by(LedgerEntry.id)))
    running = 0
    for d in deltas:  # the balance never went negative at any point of the ledger
        running += d
        assert running >= 0


def test_credits_grant_cli(settings):
    from typer.testing import CliRunner

    from sleuth.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["teams", "create", "t1"]).exit_code == 0
    r = runner.invoke(app, ["credits", "grant", "--team", "t1", "25"])
    assert r.exit_code == 0 and "balance 25" in r.stdout
    r = runner.invoke(app, ["credits", "grant", "--team", "nope", "25"])
    assert r.exit_code == 1
