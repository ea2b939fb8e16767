"""Credits: a per-team append-only ledger with a cached balance.

Every change is a ledger row plus a conditional update of the cached balance in the
same transaction:

* ``grant``   +amount to the balance.
* ``reserve`` -amount, all-or-nothing: ``UPDATE wallets SET balance = balance - n WHERE
  balance >= n`` — a single conditional statement, so concurrent reservations can never
  overdraw (PostgreSQL re-checks the predicate after a concurrent update; SQLite
  serialises writers with ``BEGIN IMMEDIATE``).
* ``capture`` moves part of a reservation to spent (balance unchanged, it was already taken).
* ``refund``  returns the uncaptured part of a reservation to the balance.

The ``*_in`` variants work inside a caller's transaction, so a job item can be marked
charged/refunded atomically with its ledger row (redelivered items never double-count).
When billing is disabled (the default on a fresh install) every reservation succeeds and
nothing is recorded: unlimited mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sleuth.db.engine import Database
from sleuth.db.models import LedgerEntry, Reservation, Wallet, utcnow
from sleuth.platform.errors import SleuthError

UNLIMITED = "unlimited"


class InsufficientCredits(SleuthError):
    def __init__(self, required: int, available: int, breakdown: list[dict[str, object]] | None = None):
        details: dict[str, object] = {"required": required, "available": available}
        if breakdown is not None:
            details["cost_breakdown"] = breakdown
        super().__init__(
            402,
            "insufficient_credits",
            f"Insufficient credits: this request needs {required}, the wallet has {available}",
            details=details,
        )


@dataclass(frozen=True)
class Balance:
    available: int
    granted_total: int
    captured_total: int
    reserved_open: int


def _wallet_update(s: Session, team_id: str, delta: int, *, require: int | None = None) -> bool:
    stmt = update(Wallet).where(Wallet.team_id == team_id)
    if require is not None:
        stmt = stmt.where(Wallet.balance >= require)
    stmt = stmt.values(balance=Wallet.balance + delta, updated_at=utcnow())
    return s.execute(stmt).rowcount == 1  # type: ignore[attr-defined]


def grant_in(s: Session, team_id: str, amount: int, reason: str = "grant") -> None:
    if amount <= 0:
        raise SleuthError(400, "invalid_amount", "Grant amount must be positive", "amount")
    if not _wallet_update(s, team_id, amount):
        s.add(Wallet(team_id=team_id, balance=amount, granted_total=amount))
    else:
        s.execute(update(Wallet).where(Wallet.team_id == team_id).values(granted_total=Wallet.granted_total + amount))
    s.add(LedgerEntry(team_id=team_id, kind="grant", amount=amount, delta=amount, reason=reason))


def reserve_in(
    s: Session,
    team_id: str,
    amount: int,
    reason: str,
    billing: bool,
    breakdown: list[dict[str, object]] | None = None,
) -> str:
    if amount < 0:
        raise SleuthError(400, "invalid_amount", "Reservation amount must not be negative", "amount")
    if not billing:
        return UNLIMITED
    if amount > 0 and not _wallet_update(s, team_id, -amount, require=amount):
        available = s.scalar(select(Wallet.balance).where(Wallet.team_id == team_id)) or 0
        raise InsufficientCredits(amount, int(available), breakdown)
    res = Reservation(team_id=team_id, amount=amount, reason=reason)
    s.add(res)
    s.flush()
    s.add(
        LedgerEntry(team_id=team_id, kind="reserve", amount=amount, delta=-amount, reservation_id=res.id, reason=reason)
    )
    return res.id


def _remaining_update(s: Session, reservation_id: str, amount: int, column: str) -> bool:
    col = Reservation.captured if column == "captured" else Reservation.refunded
    stmt = (
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .where(Reservation.amount - Reservation.captured - Reservation.refunded >= amount)
        .values({column: col + amount})
    )
    return s.execute(stmt).rowcount == 1  # type: ignore[attr-defined]


def capture_in(s: Session, reservation_id: str, amount: int, reason: str = "capture") -> bool:
    """Mark ``amount`` of the reservation as spent. False if not enough remains (never over-captures)."""
    if reservation_id == UNLIMITED or amount <= 0:
        return True
    if not _remaining_update(s, reservation_id, amount, "captured"):
        return False
    team_id = s.scalar(select(Reservation.team_id).where(Reservation.id == reservation_id))
    assert team_id is not None
    s.execute(update(Wallet).where(Wallet.team_id == team_id).values(captured_total=Wallet.captured_total + amount))
    s.add(
        LedgerEntry(
            team_id=team_id, kind="capture", amount=amount, delta=0, reservation_id=reservation_id, reason=reason
        )
    )
    return True


def refund_in(s: Session, reservation_id: str, amount: int | None = None, reason: str = "refund") -> int:
    """Return ``amount`` (default: everything not captured or refunded yet) to the balance."""
    if reservation_id == UNLIMITED:
        return 0
    res = s.get(Reservation, reservation_id)
    if res is None:
        raise SleuthError(404, "reservation_not_found", f"No reservation {reservation_id}")
    remaining = res.amount - res.captured - res.refunded
    amount = remaining if amount is None else min(amount, remaining)
    if amount <= 0 or not _remaining_update(s, reservation_id, amount, "refunded"):
        return 0
    _wallet_update(s, res.team_id, amount)
    s.add(
        LedgerEntry(
            team_id=res.team_id,
            kind="refund",
            amount=amount,
            delta=amount,
            reservation_id=reservation_id,
            reason=reason,
        )
    )
    return amount


# --- convenience wrappers that own their transaction --------------------------------------


def grant(db: Database, team_id: str, amount: int, reason: str = "grant") -> None:
    with db.write_session() as s:
        grant_in(s, team_id, amount, reason)


def reserve(
    db: Database, team_id: str, amount: int, reason: str, breakdown: list[dict[str, object]] | None = None
) -> str:
    with db.write_session() as s:
        return reserve_in(s, team_id, amount, reason, db.settings.billing_enabled, breakdown)


def capture(db: Database, reservation_id: str, amount: int, reason: str = "capture") -> bool:
    with db.write_session() as s:
        return capture_in(s, reservation_id, amount, reason)


def refund(db: Database, reservation_id: str, amount: int | None = None, reason: str = "refund") -> int:
    with db.write_session() as s:
        return refund_in(s, reservation_id, amount, reason)


def settle(db: Database, reservation_id: str, spent: int, reason: str) -> None:
    """Capture ``spent`` and refund the rest of a reservation, in one transaction."""
    with db.write_session() as s:
        capture_in(s, reservation_id, spent, reason)
        refund_in(s, reservation_id, None, reason)


def balance(db: Database, team_id: str) -> Balance:
    with db.session() as s:
        w = s.get(Wallet, team_id)
        open_res = s.execute(
            select(Reservation.amount - Reservation.captured - Reservation.refunded).where(
                Reservation.team_id == team_id
            )
        ).scalars()
        reserved = sum(int(x) for x in open_res)
        if w is None:
            return Balance(0, 0, 0, reserved)
        return Balance(int(w.balance), int(w.granted_total), int(w.captured_total), reserved)


def ledger_sum(db: Database, team_id: str) -> int:
    """Recompute the balance from the ledger (an audit check of the cached balance)."""
    with db.session() as s:
        rows = s.scalars(select(LedgerEntry.delta).where(LedgerEntry.team_id == team_id))
        return int(sum(rows))
