"""Request counters per team and day, for ``GET /v1/usage``."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sleuth.db.engine import Database
from sleuth.db.models import UsageDaily


def today() -> date:
    return datetime.now(UTC).date()


def record_request(db: Database, team_id: str, day: date | None = None) -> None:
    day = day or today()
    ins = pg_insert if db.dialect == "postgresql" else sqlite_insert
    stmt = ins(UsageDaily).values(team_id=team_id, day=day, requests=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[UsageDaily.team_id, UsageDaily.day],
        set_={"requests": UsageDaily.requests + 1},
    )
    with db.session() as s:
        s.execute(stmt)


def request_counts(db: Database, team_id: str, day: date | None = None) -> tuple[int, int]:
    day = day or today()
    month_start = day.replace(day=1)
    with db.read_session() as s:
        t = s.scalar(select(UsageDaily.requests).where(UsageDaily.team_id == team_id, UsageDaily.day == day))
        m = s.scalar(
            select(func.coalesce(func.sum(UsageDaily.requests), 0)).where(
                UsageDaily.team_id == team_id, UsageDaily.day >= month_start, UsageDaily.day <= day
            )
        )
    return int(t or 0), int(m or 0)
