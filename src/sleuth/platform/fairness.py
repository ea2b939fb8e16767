"""Who runs next among the queued job items, and when the queue is full.

**Fair claims.** Items used to be claimed oldest first, so a team's one-file batch waited behind every item of
another team's 50-file batches queued before it. :func:`team_order` ranks the teams that have queued items: the
team with the fewest items already ``processing`` (inline ``Prefer: wait`` runs count) first, then the team with
an interactive-lane item (a single ``/detect``), then (in-process workers) the team that used this process's
cores the least lately (the compute gate's decayed seconds), then the team whose oldest queued item is oldest.
(Lane first let one team's stream of single ``Prefer: wait`` uploads starve every other team's batch in a
10-minute soak.)
:func:`sleuth.platform.jobs.claim` takes that team's oldest item.
With two workers busy on team A's batch, team B's item is the next one claimed; and it need not wait for one of
A's items to finish: the in-process :class:`~sleuth.platform.worker.Worker` has one more thread (``fair_workers``)
that claims only from teams with nothing processing (``idle_only``). Its runs then go first in the compute gate,
which orders job runs by each team's recent use (:mod:`sleuth.engine.compute`). So a team's one-file batch starts
within a poll of its upload and shares the cores with one run of the busy team at a time, whatever that team
has queued.

**Bounded queue.** :func:`check_capacity` refuses new items (HTTP 503 with ``Retry-After``, code ``queue_full``)
when the queue already holds ``max_queued_items`` items, or the team ``max_queued_items_per_team``; an overload
is an explicit answer, never a request that times out. Items counted: ``pending`` (media being stored) and
``queued``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from sleuth.db.models import Job, JobItem
from sleuth.platform.errors import SleuthError

QUEUE_FULL_RETRY_AFTER_S = 10
WAITING = ("pending", "queued")


def lane_order() -> Any:
    """'' for the interactive lane, 'job' otherwise (so the interactive lane sorts first)."""
    return func.coalesce(func.nullif(JobItem.lane, "interactive"), "")


def team_order(
    s: Session,
    kinds: Sequence[str] | None = None,
    idle_only: bool = False,
    usage: Callable[[str], float] | None = None,
) -> list[str]:
    """Teams with queued items, the one to serve first first (see the module doc).

    ``idle_only``: only the teams with no item ``processing`` (the fair-share worker thread's claims).
    ``usage``: a team's recent use of this process's cores (the compute gate's decayed seconds): among teams
    equally busy and in the same lane, the one that used the least goes first, before the oldest queued item."""
    lane = lane_order()
    q = select(JobItem.team_id, func.min(lane), func.min(JobItem.created_at)).where(JobItem.status == "queued")
    if kinds:
        q = q.join(Job, Job.id == JobItem.job_id).where(Job.kind.in_(list(kinds)))
    rows = list(s.execute(q.group_by(JobItem.team_id)).all())
    if len(rows) <= 1 and not idle_only:
        return [r[0] for r in rows]
    teams = [r[0] for r in rows]
    busy = dict(
        s.execute(
            select(JobItem.team_id, func.count())
            .where(JobItem.status == "processing", JobItem.team_id.in_(teams))
            .group_by(JobItem.team_id)
        ).all()
    )
    if idle_only:
        rows = [r for r in rows if not busy.get(r[0])]
    used = {r[0]: round(usage(r[0]), 1) for r in rows} if usage is not None else {}
    rows.sort(key=lambda r: (int(busy.get(r[0], 0)), r[1] or "", used.get(r[0], 0.0), r[2]))
    return [r[0] for r in rows]


def check_capacity(s: Session, settings: Any, team_id: str, adding: int) -> None:
    """Raise 503 ``queue_full`` (with ``Retry-After``) if ``adding`` more waiting items would overfill the queue."""
    if adding <= 0:
        return
    total_cap = int(getattr(settings, "max_queued_items", 0) or 0)
    team_cap = int(getattr(settings, "max_queued_items_per_team", 0) or 0)
    if total_cap <= 0 and team_cap <= 0:
        return
    total, mine = s.execute(
        select(func.count(), func.coalesce(func.sum(case((JobItem.team_id == team_id, 1), else_=0)), 0)).where(
            JobItem.status.in_(WAITING)
        )
    ).one()
    mine, others = int(mine), int(total) - int(mine)
    headers = {"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)}
    if team_cap > 0 and mine + adding > team_cap:
        raise SleuthError(
            503,
            "queue_full",
            f"This team already has {mine} items waiting (limit {team_cap}); retry after they drain",
            headers=headers,
        )
    if total_cap > 0 and mine + others + adding > total_cap:
        raise SleuthError(
            503,
            "queue_full",
            f"The job queue is full ({mine + others} items waiting, limit {total_cap}); retry later",
            headers=headers,
        )
