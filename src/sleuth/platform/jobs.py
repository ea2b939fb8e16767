"""Jobs and job items: the database is the source of truth.

Life of an item: ``queued`` -> (claimed by a worker, lease + heartbeat) ``processing`` ->
``completed`` | ``failed``; a worker that stops heart-beating loses its lease and the
reaper puts the item back to ``queued`` (or fails it after ``max_attempts``).

Every state change is one short transaction with a guard in its WHERE clause
(``status='processing' AND worker_id=:me``), so a redelivered or duplicated item can
never be completed twice: the second completion changes no row and is discarded, and the
credit capture happens in that same transaction. When the last item of a job ends, the
job's terminal state and its callback (a row in the durable webhook outbox) are written
in the same transaction as that item.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sleuth.db.engine import Database
from sleuth.db.models import Job, JobItem, WebhookDelivery, utcnow
from sleuth.engine import heap
from sleuth.engine.compute import team_scope
from sleuth.platform import credits, fairness
from sleuth.platform.errors import SleuthError

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed")
LANES = ("interactive", "job")


@dataclass
class ItemSpec:
    filename: str
    media_type: str = ""
    media_key: str | None = None
    size: int = 0
    cost: int = 1
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class ItemFailure(Exception):
    """Raised by a handler for a per-item failure. ``retryable`` False = fail now (bad input)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


Handler = Callable[[Any, JobItem, Job], dict[str, Any]]
# (platform, item, job) -> result payload
_handlers: dict[str, Handler] = {}
# kind -> callable(session, job) -> (callback payload) for the terminal callback
_callback_builders: dict[str, Callable[[Session, Job], dict[str, Any]]] = {}
# hooks run after an item reaches a terminal state (outside the transaction): zero retention etc.
_after_item: dict[str, Callable[[Any, JobItem, Job], None]] = {}


def register_kind(
    kind: str,
    handler: Handler,
    callback_builder: Callable[[Session, Job], dict[str, Any]] | None = None,
    after_item: Callable[[Any, JobItem, Job], None] | None = None,
) -> None:
    _handlers[kind] = handler
    if callback_builder is not None:
        _callback_builders[kind] = callback_builder
    if after_item is not None:
        _after_item[kind] = after_item


def create_job(
    db: Database,
    team_id: str,
    kind: str,
    items: list[ItemSpec],
    *,
    options: dict[str, Any] | None = None,
    callback_url: str | None = None,
    lane: str = "job",
    status: str = "queued",
    reserve_reason: str | None = None,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    client_reference_id: str | None = None,
    job_id: str | None = None,
) -> Job:
    """Create a job and its items, reserving every item's cost up front (all-or-nothing).

    If the wallet cannot cover the total, ``InsufficientCredits`` (402, with a per-file cost
    breakdown) is raised and nothing is written.
    """
    total_cost = sum(i.cost for i in items)
    with db.write_session() as s:
        if status != "awaiting_upload":
            fairness.check_capacity(s, db.settings, team_id, len(items))  # 503 queue_full, nothing written
        reservation = None
        if status != "awaiting_upload":
            breakdown: list[dict[str, object]] = [
                {"filename": i.filename, "media_type": i.media_type, "cost": i.cost} for i in items
            ]
            reservation = credits.reserve_in(
                s, team_id, total_cost, reserve_reason or kind, db.settings.billing_enabled, breakdown
            )
        job = Job(
            id=job_id or str(uuid.uuid4()),
            team_id=team_id,
            kind=kind,
            status=status,
            options=options or {},
            callback_url=callback_url,
            reservation_id=reservation,
            total=len(items),
            expires_at=expires_at,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            client_reference_id=client_reference_id,
        )
        s.add(job)
        s.flush()
        item_status = "queued" if status == "queued" else "pending"
        for seq, spec in enumerate(items):
            s.add(
                JobItem(
                    id=spec.id,
                    job_id=job.id,
                    team_id=team_id,
                    seq=seq,
                    status=item_status,
                    lane=lane,
                    filename=spec.filename,
                    media_type=spec.media_type,
                    media_key=spec.media_key,
                    size=spec.size,
                    cost=spec.cost,
                )
            )
        return job


def start_job(db: Database, job_id: str, reserve_reason: str, expires_at: datetime | None = None) -> Job:
    """Queue a job created as ``awaiting_upload``: reserve its cost now (402 if short)."""
    with db.write_session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise SleuthError(404, "not_found", "Job not found")
        if job.status != "awaiting_upload":
            return job
        items = list(s.scalars(select(JobItem).where(JobItem.job_id == job_id)))
        fairness.check_capacity(s, db.settings, job.team_id, len(items))  # 503 queue_full, still awaiting_upload
        cost = sum(i.cost for i in items)
        job.reservation_id = credits.reserve_in(
            s,
            job.team_id,
            cost,
            reserve_reason,
            db.settings.billing_enabled,
            [{"filename": i.filename, "cost": i.cost} for i in items],
        )
        job.status = "queued"
        job.updated_at = utcnow()
        if expires_at is not None:
            job.expires_at = expires_at
        for i in items:
            i.status = "queued"
        return job


def release_job(db: Database, job_id: str) -> None:
    """Queue a job created as ``staging`` (credits already reserved, media now stored)."""
    with db.write_session() as s:
        s.execute(
            update(Job).where(Job.id == job_id, Job.status == "staging").values(status="queued", updated_at=utcnow())
        )
        s.execute(update(JobItem).where(JobItem.job_id == job_id, JobItem.status == "pending").values(status="queued"))


def discard_job(db: Database, job_id: str) -> None:
    """Undo a job that never got going: refund what it reserved and delete its rows."""
    with db.write_session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        if job.reservation_id:
            credits.refund_in(s, job.reservation_id, None, f"{job.kind} {job.id} discarded")
        s.delete(job)


def claim(
    db: Database,
    worker_id: str,
    limit: int = 1,
    lease_s: float | None = None,
    kinds: list[str] | None = None,
    idle_teams_only: bool = False,
    usage: Callable[[str], float] | None = None,
) -> list[str]:
    """Atomically claim up to ``limit`` queued items of one team, fairly across teams. Returns item ids.

    The team comes from :func:`sleuth.platform.fairness.team_order` (the team with the fewest items processing,
    then interactive lane first, then the oldest queued item); within the team interactive first, then oldest.
    ``idle_teams_only``: only from a team with no item processing (the worker's fair-share thread).
    ``usage``: each team's recent use of the cores, a tie-break between teams equally busy (in-process workers
    pass the compute gate's :meth:`~sleuth.engine.compute.ComputeGate.team_usage`).
    """
    lease = timedelta(seconds=lease_s or db.settings.job_lease_s)
    now = utcnow()
    with db.write_session() as s:
        ids: list[str] = []
        for team_id in fairness.team_order(s, kinds, idle_only=idle_teams_only, usage=usage)[:8]:
            q = select(JobItem.id).where(JobItem.status == "queued", JobItem.team_id == team_id)
            if kinds:
                q = q.join(Job, Job.id == JobItem.job_id).where(Job.kind.in_(kinds))
            q = q.order_by(fairness.lane_order(), JobItem.created_at, JobItem.seq).limit(limit)
            if db.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True, of=JobItem)
            ids = list(s.scalars(q))
            if ids:
                break
        if not ids:
            return []
        s.execute(
            update(JobItem)
            .where(JobItem.id.in_(ids), JobItem.status == "queued")
            .values(
                status="processing",
                worker_id=worker_id,
                lease_until=now + lease,
                attempts=JobItem.attempts + 1,
                started_at=now,
            )
        )
        job_ids = set(s.scalars(select(JobItem.job_id).where(JobItem.id.in_(ids))))
        s.execute(
            update(Job).where(Job.id.in_(job_ids), Job.status == "queued").values(status="processing", updated_at=now)
        )
    return ids


def claim_item(db: Database, item_id: str, worker_id: str, lease_s: float | None = None) -> bool:
    """Claim one specific queued item (a request that waits for its own result runs it inline)."""
    now = utcnow()
    lease = timedelta(seconds=lease_s or db.settings.job_lease_s)
    with db.write_session() as s:
        res = s.execute(
            update(JobItem)
            .where(JobItem.id == item_id, JobItem.status == "queued")
            .values(
                status="processing",
                worker_id=worker_id,
                lease_until=now + lease,
                attempts=JobItem.attempts + 1,
                started_at=now,
            )
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        job_id = s.scalar(select(JobItem.job_id).where(JobItem.id == item_id))
        s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(status="processing"))
        return True


def heartbeat(db: Database, worker_id: str, item_ids: list[str], lease_s: float | None = None) -> int:
    if not item_ids:
        return 0
    until = utcnow() + timedelta(seconds=lease_s or db.settings.job_lease_s)
    with db.session() as s:
        res = s.execute(
            update(JobItem)
            .where(JobItem.id.in_(item_ids), JobItem.worker_id == worker_id, JobItem.status == "processing")
            .values(lease_until=until)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


def _finish_job_if_done(s: Session, job_id: str) -> Job | None:
    # the job row is locked first (Postgres; SQLite serialises writers anyway): two items finishing at once
    # count in turn, each seeing the other's committed status, so the counts are exact and one of them settles it
    job = s.get(Job, job_id, with_for_update=True)
    if job is None:
        return None
    counts = dict(
        s.execute(select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)).all()
    )
    job.completed_count = int(counts.get("completed", 0))
    job.failed_count = int(counts.get("failed", 0))
    job.updated_at = utcnow()
    if job.completed_count + job.failed_count < job.total:
        return None
    job.status = "completed" if job.completed_count > 0 or job.total == 0 else "failed"
    job.completed_at = utcnow()
    if job.reservation_id:
        credits.refund_in(s, job.reservation_id, None, f"{job.kind} {job.id} settled")
    if job.callback_url:
        builder = _callback_builders.get(job.kind)
        payload = builder(s, job) if builder else {"success": True, "item": {"uuid": job.id, "status": job.status}}
        s.add(
            WebhookDelivery(
                team_id=job.team_id, event_key=f"job:{job.id}:{job.status}", url=job.callback_url, payload=payload
            )
        )
    return job


def complete(db: Database, item_id: str, worker_id: str, result: dict[str, Any]) -> bool:
    """Record a result. False (and nothing changes) if this worker no longer owns the item."""
    with db.write_session() as s:
        item = s.get(JobItem, item_id)
        if item is None or item.status != "processing" or item.worker_id != worker_id:
            return False
        res = s.execute(
            update(JobItem)
            .where(JobItem.id == item_id, JobItem.status == "processing", JobItem.worker_id == worker_id)
            .values(
                status="completed", result=result, completed_at=utcnow(), lease_until=None, error=None, charged=True
            )
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        job = s.get(Job, item.job_id)
        if job is not None and job.reservation_id and item.cost:
            credits.capture_in(s, job.reservation_id, item.cost, f"item {item_id}")
        _finish_job_if_done(s, item.job_id)
        return True


def fail(db: Database, item_id: str, worker_id: str | None, error: str, retryable: bool = False) -> str:
    """Fail or requeue an item. Returns the new status ('queued', 'failed') or '' if not owned."""
    with db.write_session() as s:
        item = s.get(JobItem, item_id)
        if item is None or item.status != "processing" or (worker_id is not None and item.worker_id != worker_id):
            return ""
        if retryable and item.attempts < db.settings.job_max_attempts:
            item.status, item.worker_id, item.lease_until, item.error = "queued", None, None, error
            return "queued"
        _fail_in(s, item, error)
        return "failed"


def _fail_in(s: Session, item: JobItem, error: str) -> None:
    item.status, item.error, item.lease_until, item.completed_at = "failed", error, None, utcnow()
    job = s.get(Job, item.job_id)
    if job is not None and job.reservation_id and item.cost:
        credits.refund_in(s, job.reservation_id, item.cost, f"item {item.id} failed")
    _finish_job_if_done(s, item.job_id)


def fail_pending(db: Database, item_id: str, error: str) -> None:
    """Fail an item that never reached a worker (e.g. a file rejected at intake)."""
    with db.write_session() as s:
        item = s.get(JobItem, item_id)
        if item is not None and item.status not in TERMINAL:
            _fail_in(s, item, error)


def reap(db: Database, now: datetime | None = None, requeued: list[str] | None = None) -> int:
    """Return items whose lease expired to the queue (or fail them after max attempts).

    ``requeued``, when given, receives the ids put back to ``queued`` (a Celery worker
    re-enqueues them: their original message was acked or is held by a dead worker).
    """
    now = now or utcnow()
    n = 0
    with db.write_session() as s:
        stale = list(s.scalars(select(JobItem).where(JobItem.status == "processing", JobItem.lease_until < now)))
        for item in stale:
            if item.attempts >= db.settings.job_max_attempts:
                _fail_in(s, item, f"worker lost {item.attempts} times (last: {item.worker_id}); giving up")
            else:
                lost = item.worker_id
                item.status, item.worker_id, item.lease_until = "queued", None, None
                item.error = f"requeued after worker {lost} stopped responding"
                if requeued is not None:
                    requeued.append(item.id)
            n += 1
    return n


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_item(platform: Any, item_id: str, worker_id: str) -> str:
    """Execute one claimed item with its kind's handler; record the outcome."""
    db: Database = platform.db
    with db.session() as s:
        item = s.get(JobItem, item_id)
        job = s.get(Job, item.job_id) if item is not None else None
    if item is None or job is None:
        return ""
    handler = _handlers.get(job.kind)
    outcome = ""
    try:
        if handler is None:
            raise ItemFailure(f"no handler for job kind {job.kind!r} in this worker", retryable=True)
        with team_scope(item.team_id):  # the compute gate orders job runs fairly across teams
            result = handler(platform, item, job)
    except ItemFailure as e:
        outcome = fail(db, item_id, worker_id, str(e), retryable=e.retryable)
    except SleuthError as e:
        outcome = fail(db, item_id, worker_id, e.message, retryable=False)
    except ValueError as e:
        outcome = fail(db, item_id, worker_id, str(e) or "invalid input", retryable=False)
    except Exception as e:  # unexpected: retry (bounded), then fail with the reason
        log.exception("item %s failed", item_id)
        outcome = fail(db, item_id, worker_id, f"internal error: {type(e).__name__}: {e}", retryable=True)
    else:
        outcome = "completed" if complete(db, item_id, worker_id, result) else ""
    if outcome in TERMINAL:
        hook = _after_item.get(job.kind)
        if hook is not None:
            with db.session() as s:
                fresh = s.get(JobItem, item_id)
            if fresh is not None:
                try:
                    hook(platform, fresh, job)
                except Exception:
                    log.exception("after-item hook failed for %s", item_id)
    heap.trim(enabled=getattr(platform.settings, "heap_trim", True))  # freed activations back to the OS (<= 1/s)
    return outcome
